import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals'
import http from 'node:http'
import net from 'node:net'
import { createTokenSource, type TokenSource } from '../src/backend/auth.js'
import {
  ACTION_VERSION,
  BackendClient,
  BackendError,
  type BackendClientOptions
} from '../src/backend/client.js'
import { toBackendPlan, type PlanLike } from '../src/backend/plan.js'
import type { BackendPlan } from '../src/backend/types.js'
import {
  startCoordinationServer,
  type CoordinationServer,
  IMMEDIATE_CONSISTENCY
} from '../testing/coordination-server.js'
import { silenceWorkflowCommands } from '../testing/quiet.js'
import { sharedPlanText } from '../testing/fixtures.js'

const fixture = (name: string): PlanLike => JSON.parse(sharedPlanText(name)) as PlanLike

const ENV_KEYS = [
  'ACTIONS_ID_TOKEN_REQUEST_URL',
  'ACTIONS_ID_TOKEN_REQUEST_TOKEN',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy'
]
const savedEnv = Object.fromEntries(ENV_KEYS.map(key => [key, process.env[key]]))

function restoreEnv(): void {
  for (const key of ENV_KEYS) {
    if (savedEnv[key] === undefined) delete process.env[key]
    else process.env[key] = savedEnv[key]
  }
}

let server: CoordinationServer
let tokens: TokenSource
let runCounter = 0

beforeAll(async () => {
  silenceWorkflowCommands()
  // Rate limiting has its own server below; here it would only make counts depend on timing.
  server = await startCoordinationServer({ ...IMMEDIATE_CONSISTENCY, rateLimit: false })
  Object.assign(process.env, server.tokenEnv())
  tokens = createTokenSource({ log: () => {} })
})

afterEach(() => {
  server.clearFaults()
})

afterAll(async () => {
  restoreEnv()
  await server.close()
  jest.restoreAllMocks()
})

interface Harness {
  client: BackendClient
  sleeps: number[]
  logs: string[]
}

function makeClient(overrides: Partial<BackendClientOptions> = {}): Harness {
  const sleeps: number[] = []
  const logs: string[] = []
  const client = new BackendClient({
    baseUrl: `${server.url}/`,
    tokens,
    sleep: async ms => {
      sleeps.push(ms)
    },
    random: () => 0.5,
    log: message => logs.push(message),
    ...overrides
  })
  return { client, sleeps, logs }
}

function newRunId(): string {
  runCounter += 1
  return `gha-${Date.now()}-${runCounter}-test`
}

function matrixPlan(): BackendPlan {
  return toBackendPlan(fixture('remote-state-matrix'), '905f6efbdd89')
}

async function createMatrixRun(client: BackendClient): Promise<string> {
  const runId = newRunId()
  await client.createRun({ plan: matrixPlan(), runId, triggerType: 'ci', actor: 'octocat' })
  return runId
}

function requestsSince(index: number) {
  return server.requests.slice(index)
}

async function rejection(promise: Promise<unknown>): Promise<BackendError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(BackendError)
    return error as BackendError
  }
  throw new Error('expected the call to fail')
}

/**
 * Forwards requests to the coordination server, and for the first one that
 * matches, lets the server process it but cuts the connection instead of
 * answering: a response lost on the way back.
 */
async function startLossyForwarder(
  target: string,
  matches: (path: string) => boolean
): Promise<{ url: string; close(): Promise<void> }> {
  const upstreamUrl = new URL(target)
  let lost = false
  const forwarder = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const upstream = http.request(
        {
          host: upstreamUrl.hostname,
          port: upstreamUrl.port,
          method: req.method,
          path: req.url,
          headers: req.headers
        },
        answer => {
          const body: Buffer[] = []
          answer.on('data', (chunk: Buffer) => body.push(chunk))
          answer.on('end', () => {
            if (!lost && matches(req.url ?? '')) {
              lost = true
              req.socket.destroy()
              return
            }
            res.writeHead(answer.statusCode ?? 502, answer.headers)
            res.end(Buffer.concat(body))
          })
        }
      )
      upstream.end(Buffer.concat(chunks))
    })
  })
  await new Promise<void>(resolve => forwarder.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(forwarder.address() as net.AddressInfo).port}`,
    close: () =>
      new Promise<void>(resolve => {
        forwarder.closeAllConnections()
        forwarder.close(() => resolve())
      })
  }
}

describe('toBackendPlan', () => {
  it('converts an orun plan file as the protocol describes', () => {
    const plan = toBackendPlan(
      {
        metadata: { checksum: 'sha256-0b673779a274f2c1' },
        jobs: [
          {
            id: 'api@dev.smoke',
            component: 'api',
            dependsOn: ['foundation@dev.smoke'],
            steps: [
              { id: 'smoke', name: 'Smoke', run: 'echo ok' },
              { name: 'named only', run: 'true' },
              { use: 'helm/deploy', with: { chart: 'api' } },
              { run: 'echo bare' }
            ]
          },
          { id: 'foundation@dev.smoke' }
        ]
      },
      '0b673779a274',
      '2026-05-02T10:00:00Z'
    )
    expect(plan).toEqual({
      checksum: '0b673779a274',
      version: 'sourceplane.io/v1',
      createdAt: '2026-05-02T10:00:00Z',
      jobs: [
        {
          jobId: 'api@dev.smoke',
          component: 'api',
          deps: ['foundation@dev.smoke'],
          steps: [
            { stepId: 'smoke', uses: 'run', with: { raw: 'echo ok', name: 'Smoke' } },
            { stepId: 'named only', uses: 'run', with: { raw: 'true', name: 'named only' } },
            { stepId: 'helm/deploy', uses: 'helm/deploy', with: { chart: 'api' } },
            { stepId: 'unnamed-step', uses: 'run', with: { raw: 'echo bare' } }
          ]
        },
        // No component field: empty, never taken apart from the id (its format changed).
        { jobId: 'foundation@dev.smoke', component: '', deps: [], steps: [] }
      ]
    })
  })

  it('stamps createdAt with the current time when none is given', () => {
    const before = Date.now()
    const plan = toBackendPlan(fixture('single'), '5e0143d6b3b9')
    expect(Date.parse(plan.createdAt)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000)
    expect(plan.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
  })
})

describe('BackendClient against the local coordination server', () => {
  it('health answers without spending a token', async () => {
    const fresh = createTokenSource({ log: () => {} })
    const { client } = makeClient({ tokens: fresh })
    await expect(client.health()).resolves.toEqual({ status: 'ok', service: 'orun-api' })
    expect(fresh.mints).toBe(0)
    expect(client.stats.byRoute).toEqual({ 'GET /': 1 })
  })

  it('runs the whole protocol: create, join, claim, heartbeat, logs, update, reads', async () => {
    const { client } = makeClient()
    const runId = newRunId()
    const plan = matrixPlan()

    const created = await client.createRun({ plan, runId, triggerType: 'ci', actor: 'octocat' })
    expect(created).toMatchObject({ runId, status: 'running', created: true })
    const joined = await client.createRun({ plan, runId, triggerType: 'ci', actor: 'octocat' })
    expect(joined).toMatchObject({ runId, status: 'running', created: false })

    const run = await client.getRun(runId)
    expect(run).toMatchObject({ runId, status: 'running', planChecksum: '905f6efbdd89' })
    expect(run.jobTotal).toBe(plan.jobs.length)

    const runnable = await client.runnable(runId)
    expect(runnable).toContain('foundation@dev.smoke')
    expect(runnable).not.toContain('api@dev.smoke')

    await expect(client.claim(runId, 'api@dev.smoke', 'runner-1')).resolves.toEqual({
      claimed: false,
      currentStatus: 'pending',
      depsWaiting: true
    })
    await expect(client.claim(runId, 'foundation@dev.smoke', 'runner-1')).resolves.toEqual({
      claimed: true
    })
    await expect(client.claim(runId, 'foundation@dev.smoke', 'runner-2')).resolves.toEqual({
      claimed: false,
      currentStatus: 'running'
    })
    await expect(client.heartbeat(runId, 'foundation@dev.smoke', 'runner-1')).resolves.toEqual({
      ok: true
    })
    await expect(client.heartbeat(runId, 'foundation@dev.smoke', 'runner-2')).resolves.toEqual({
      ok: false,
      abort: true
    })

    const log = 'line one\nünïcødé line two\n'
    const uploaded = await client.uploadLog(runId, 'foundation@dev.smoke', log)
    expect(uploaded.logRef).toBe(`1001/runs/${runId}/logs/foundation@dev.smoke.log`)
    await expect(client.readLog(runId, 'foundation@dev.smoke')).resolves.toBe(log)

    await expect(
      client.update(runId, 'foundation@dev.smoke', 'runner-1', 'success')
    ).resolves.toEqual({ ok: true })

    const status = await client.jobStatus(runId, 'foundation@dev.smoke')
    expect(status).toMatchObject({
      jobId: 'foundation@dev.smoke',
      component: 'foundation',
      status: 'success',
      runnerId: 'runner-1',
      deps: []
    })
    const jobs = await client.listJobs(runId)
    expect(jobs).toHaveLength(plan.jobs.length)
    expect(jobs.find(job => job.jobId === 'foundation@dev.smoke')?.status).toBe('success')
    expect(await client.runnable(runId)).toContain('api@dev.smoke')

    await client.claim(runId, 'api@dev.smoke', 'runner-1')
    await expect(
      client.update(runId, 'api@dev.smoke', 'runner-1', 'failed', 'exit 1')
    ).resolves.toEqual({ ok: true })
    expect(await client.jobStatus(runId, 'api@dev.smoke')).toMatchObject({
      status: 'failed',
      lastError: 'exit 1'
    })
    await expect(client.claim(runId, 'web@dev.smoke', 'runner-1')).resolves.toEqual({
      claimed: false,
      currentStatus: 'pending',
      depsBlocked: true
    })
    expect((await client.getRun(runId)).status).toBe('failed')
    expect(client.stats.retries).toBe(0)
  })

  it('creates a run without a runId (the server picks one)', async () => {
    const { client } = makeClient()
    const created = await client.createRun({ plan: matrixPlan() })
    expect(created.created).toBe(true)
    expect(created.runId).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('percent-encodes every id path segment', async () => {
    const { client } = makeClient()
    const odd = 'we ird "job"/x@dev.smoke'
    const runId = `run with spaces "quoted"/slash@${Date.now()}`
    const plan: BackendPlan = {
      checksum: 'encodingtest',
      version: 'sourceplane.io/v1',
      createdAt: '2026-05-02T10:00:00Z',
      jobs: [
        { jobId: 'api@dev.smoke', component: 'api', deps: [], steps: [] },
        { jobId: odd, component: 'weird', deps: [], steps: [] }
      ]
    }
    await client.createRun({ plan, runId })
    const mark = server.requests.length
    await expect(client.claim(runId, 'api@dev.smoke', 'r1')).resolves.toEqual({ claimed: true })
    await expect(client.claim(runId, odd, 'r1')).resolves.toEqual({ claimed: true })
    await client.uploadLog(runId, odd, 'hello')
    await expect(client.readLog(runId, odd)).resolves.toBe('hello')
    await expect(client.jobStatus(runId, odd)).resolves.toMatchObject({ jobId: odd })
    await expect(client.getRun(runId)).resolves.toMatchObject({ runId })

    const seen = requestsSince(mark)
    const encodedRun = encodeURIComponent(runId)
    expect(seen[0].path).toBe(`/v1/runs/${encodedRun}/jobs/api%40dev.smoke/claim`)
    expect(seen[1].path).toBe(
      `/v1/runs/${encodedRun}/jobs/we%20ird%20%22job%22%2Fx%40dev.smoke/claim`
    )
    expect(seen.map(request => request.route)).toEqual([
      'claim',
      'claim',
      'uploadLog',
      'readLog',
      'jobStatus',
      'getRun'
    ])
    expect(seen.every(request => request.status === 200)).toBe(true)
  })

  it('decodes error envelopes into BackendError without retrying 4xx', async () => {
    const { client } = makeClient()
    const missing = await rejection(client.claim('no-such-run', 'api@dev.smoke', 'r1'))
    expect(missing).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
      message: 'Coordinator not initialized',
      endpoint: 'POST /v1/runs/{runId}/jobs/{jobId}/claim'
    })
    expect(await rejection(client.getRun('no-such-run'))).toMatchObject({
      status: 404,
      message: 'Run not found',
      endpoint: 'GET /v1/runs/{runId}'
    })

    const runId = await createMatrixRun(client)
    expect(await rejection(client.jobStatus(runId, 'ghost@dev.smoke'))).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
      message: 'Job not found'
    })
    expect(await rejection(client.readLog(runId, 'api@dev.smoke'))).toMatchObject({
      status: 404,
      code: 'NOT_FOUND'
    })
    const other = { ...matrixPlan(), checksum: 'differentsum' }
    expect(await rejection(client.createRun({ plan: other, runId }))).toMatchObject({
      status: 409,
      code: 'CONFLICT',
      message: 'Run already exists with a different plan checksum',
      endpoint: 'POST /v1/runs'
    })
    expect(
      await rejection(client.update(runId, 'foundation@dev.smoke', 'r1', 'success'))
    ).toMatchObject({
      status: 400,
      code: 'INVALID_REQUEST',
      message: 'Job is not running (current: pending)'
    })
    await client.claim(runId, 'foundation@dev.smoke', 'r1')
    expect(
      await rejection(client.update(runId, 'foundation@dev.smoke', 'intruder', 'success'))
    ).toMatchObject({ status: 400, message: 'Runner does not own this job' })

    expect(client.stats.retries).toBe(0)
    expect(client.stats.requests).toBe(9)
    expect(missing.describe()).toBe(
      'POST /v1/runs/{runId}/jobs/{jobId}/claim failed (404 NOT_FOUND): Coordinator not initialized'
    )
  })

  it('turns a non-JSON 502 page and an empty body into BAD_RESPONSE', async () => {
    const { client } = makeClient({ maxAttempts: 2 })
    const html = '<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>'
    server.inject('getRun', {
      kind: 'status',
      status: 502,
      count: 2,
      body: html,
      contentType: 'text/html'
    })
    const htmlError = await rejection(client.getRun('whatever'))
    expect(htmlError).toMatchObject({ status: 502, code: 'BAD_RESPONSE' })
    expect(htmlError.message).toContain('502')
    expect(htmlError.message).toContain('<html><head><title>502 Bad Gateway')

    server.inject('getRun', { kind: 'status', status: 502, count: 2, body: '' })
    const emptyError = await rejection(client.getRun('whatever'))
    expect(emptyError).toMatchObject({ status: 502, code: 'BAD_RESPONSE' })
    expect(emptyError.message).toContain('empty body')

    // A 200 that is not JSON (a captive portal, a misrouted URL) is not a success.
    server.inject('listJobs', { kind: 'status', status: 200, count: 1, body: 'Welcome!' })
    const okButHtml = await rejection(client.listJobs('whatever'))
    expect(okButHtml).toMatchObject({ status: 200, code: 'BAD_RESPONSE' })
    expect(okButHtml.message).toContain('Welcome!')

    const long = 'x'.repeat(5000)
    server.inject('getRun', { kind: 'status', status: 418, count: 1, body: long })
    const longError = await rejection(client.getRun('whatever'))
    expect(longError.message.length).toBeLessThan(200)
  })

  it('retries 5xx with jittered backoff, then succeeds', async () => {
    const { client, sleeps, logs } = makeClient()
    const runId = await createMatrixRun(client)
    server.inject('getRun', { kind: 'status', status: 500, count: 1 })
    server.inject('getRun', { kind: 'status', status: 503, count: 2 })
    const mark = server.requests.length
    await expect(client.getRun(runId)).resolves.toMatchObject({ runId })
    expect(requestsSince(mark).map(request => request.status)).toEqual([500, 503, 503, 200])
    expect(client.stats.retries).toBe(3)
    // full jitter with random() = 0.5 over 500 ms * 2^attempt
    expect(sleeps).toEqual([250, 500, 1000])
    expect(logs).toHaveLength(3)
    expect(logs[0]).toContain('GET /v1/runs/{runId} failed (500 INTERNAL_ERROR)')
    expect(logs[0]).toContain('retrying in 250 ms')
  })

  it('gives up after maxAttempts with the last error', async () => {
    const { client, sleeps } = makeClient({ maxAttempts: 3 })
    server.inject('runnable', { kind: 'status', status: 500, count: 1 })
    server.inject('runnable', { kind: 'status', status: 503, count: 10 })
    const mark = server.requests.length
    const error = await rejection(client.runnable('any'))
    expect(error).toMatchObject({ status: 503, code: 'INTERNAL_ERROR' })
    expect(requestsSince(mark)).toHaveLength(3)
    expect(sleeps).toHaveLength(2)
  })

  it('caps the backoff', async () => {
    const { client, sleeps } = makeClient({ maxAttempts: 8, random: () => 0.999 })
    server.inject('runnable', { kind: 'status', status: 500, count: 7 })
    const runId = await createMatrixRun(client)
    await client.runnable(runId)
    expect(Math.max(...sleeps)).toBeLessThanOrEqual(10_000)
    expect(sleeps[sleeps.length - 1]).toBeGreaterThan(9_000)
  })

  it('retries a dropped connection', async () => {
    const { client } = makeClient()
    const runId = await createMatrixRun(client)
    server.inject('listJobs', { kind: 'drop', count: 2 })
    const jobs = await client.listJobs(runId)
    expect(jobs.map(job => job.jobId)).toEqual([
      'foundation@dev.smoke',
      'api@dev.smoke',
      'web@dev.smoke',
      'foundation@stage.smoke',
      'api@stage.smoke',
      'web@stage.smoke'
    ])
    expect(client.stats.retries).toBe(2)
    expect(client.stats.byRoute['GET /v1/runs/{runId}/jobs']).toBe(3)
  })

  it('reports a network error when nothing listens', async () => {
    const closed = http.createServer()
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as net.AddressInfo).port
    await new Promise<void>(resolve => closed.close(() => resolve()))
    const { client } = makeClient({ baseUrl: `http://127.0.0.1:${port}`, maxAttempts: 2 })
    const error = await rejection(client.runnable('x'))
    expect(error).toMatchObject({ status: 0, code: 'NETWORK' })
    expect(error.message).toContain('ECONNREFUSED')
    expect(client.stats.requests).toBe(2)
  })

  it('times out a slow answer and retries it', async () => {
    const { client, logs } = makeClient({ timeoutMs: 200 })
    const runId = await createMatrixRun(client)
    // Far longer than the timeout, so "did not wait for the slow answer" holds on a busy machine.
    server.inject('runnable', { kind: 'delay', ms: 30_000, count: 1 })
    const started = Date.now()
    await expect(client.runnable(runId)).resolves.toContain('foundation@dev.smoke')
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(logs[0]).toContain('(TIMEOUT)')

    server.inject('runnable', { kind: 'delay', ms: 1000, count: 2 })
    const { client: impatient } = makeClient({ timeoutMs: 200, maxAttempts: 2 })
    expect(await rejection(impatient.runnable(runId))).toMatchObject({
      status: 0,
      code: 'TIMEOUT'
    })
  })

  it('does not retry createRun plan-validation 500s', async () => {
    const { client } = makeClient()
    const duplicate = toBackendPlan(fixture('invalid-duplicate-id'), 'af7d905ff56c')
    const mark = server.requests.length
    const error = await rejection(client.createRun({ plan: duplicate, runId: newRunId() }))
    expect(error).toMatchObject({
      status: 500,
      code: 'INTERNAL_ERROR',
      message: 'Duplicate jobId: a@dev.smoke'
    })
    const dangling = toBackendPlan(fixture('invalid-dangling-dep'), '607eb91c7bc4')
    const danglingError = await rejection(client.createRun({ plan: dangling, runId: newRunId() }))
    expect(danglingError.message).toContain('does not exist in plan')
    expect(requestsSince(mark)).toHaveLength(2)
    expect(client.stats.retries).toBe(0)
  })

  it('still retries a generic 500 on createRun', async () => {
    const { client } = makeClient()
    server.inject('createRun', {
      kind: 'status',
      status: 500,
      count: 1,
      body: JSON.stringify({ error: 'Internal server error', code: 'INTERNAL_ERROR' }),
      contentType: 'application/json'
    })
    server.inject('createRun', { kind: 'status', status: 500, count: 1, body: '' })
    const created = await client.createRun({ plan: matrixPlan(), runId: newRunId() })
    expect(created.created).toBe(true)
    expect(client.stats.retries).toBe(2)
  })

  it('honours Retry-After on 429 and counts it apart from other retries', async () => {
    const { client, sleeps } = makeClient({ maxAttempts: 2 })
    const runId = await createMatrixRun(client)
    server.inject('runnable', { kind: 'rateLimit', count: 6 })
    await expect(client.runnable(runId)).resolves.toContain('foundation@dev.smoke')
    expect(client.stats.rateLimited).toBe(6)
    expect(client.stats.retries).toBe(6)
    expect(sleeps).toHaveLength(6)
    // Retry-After (1 s) plus a jitter whose window widens with each 429 in a row (1 s, 2 s, then capped),
    // so a crowd of runners does not collide again on the next second.
    sleeps.forEach((ms, index) => {
      expect(ms).toBeGreaterThanOrEqual(1000)
      expect(ms).toBeLessThan(1000 + Math.min(2500, 1000 * 2 ** index))
    })
    expect(sleeps[1]).toBeGreaterThan(sleeps[0])

    const { client: bounded } = makeClient({ maxRateLimitedAttempts: 3 })
    server.inject('runnable', { kind: 'rateLimit', count: 10 })
    const error = await rejection(bounded.runnable(runId))
    expect(error).toMatchObject({
      status: 429,
      code: 'RATE_LIMITED',
      message: 'Rate limit exceeded',
      retryAfterMs: 1000
    })
    expect(bounded.stats.requests).toBe(3)
    expect(bounded.stats.rateLimited).toBe(3)
  })

  it('update: a retried update that finds its own result already recorded succeeds', async () => {
    const runId = newRunId()
    const { client: setup } = makeClient()
    await setup.createRun({ plan: matrixPlan(), runId })
    await setup.claim(runId, 'foundation@dev.smoke', 'runner-1')

    // The server records the first attempt, but its answer never comes back.
    const lossy = await startLossyForwarder(server.url, path => path.endsWith('/update'))
    try {
      const { client, logs } = makeClient({ baseUrl: lossy.url })
      await expect(
        client.update(runId, 'foundation@dev.smoke', 'runner-1', 'success')
      ).resolves.toEqual({ ok: true, alreadyRecorded: true })
      expect(client.stats.byRoute['POST /v1/runs/{runId}/jobs/{jobId}/update']).toBe(2)
      expect(logs[0]).toContain('(NETWORK)')
      expect(server.jobsOf(runId).find(j => j.jobId === 'foundation@dev.smoke')?.status).toBe(
        'success'
      )

      // Without an ambiguous attempt the same 400 is a real error.
      const error = await rejection(
        client.update(runId, 'foundation@dev.smoke', 'runner-1', 'success')
      )
      expect(error.message).toBe('Job is not running (current: success)')
    } finally {
      await lossy.close()
    }
  })

  it('update: a recorded result different from ours is still an error', async () => {
    const runId = newRunId()
    const { client: setup } = makeClient()
    await setup.createRun({ plan: matrixPlan(), runId })
    await setup.claim(runId, 'foundation@dev.smoke', 'runner-1')
    server.inject('update', { kind: 'drop', count: 1 })
    const { client } = makeClient({
      sleep: () => setup.update(runId, 'foundation@dev.smoke', 'runner-1', 'failed').then(() => {})
    })
    const error = await rejection(
      client.update(runId, 'foundation@dev.smoke', 'runner-1', 'success')
    )
    expect(error).toMatchObject({ status: 400, message: 'Job is not running (current: failed)' })
  })

  it('claim: a retried claim that finds the job running under our runner id recovers it', async () => {
    const runId = newRunId()
    const { client: setup } = makeClient()
    await setup.createRun({ plan: matrixPlan(), runId })

    const lossy = await startLossyForwarder(server.url, path => path.endsWith('/claim'))
    const { client } = makeClient({ baseUrl: lossy.url })
    try {
      await expect(client.claim(runId, 'foundation@dev.smoke', 'runner-1')).resolves.toEqual({
        claimed: true,
        recovered: true
      })
    } finally {
      await lossy.close()
    }
    expect(server.jobsOf(runId).find(j => j.jobId === 'foundation@dev.smoke')).toMatchObject({
      status: 'running',
      runnerId: 'runner-1',
      claims: 1
    })
    expect(client.stats.byRoute).toEqual({
      'POST /v1/runs/{runId}/jobs/{jobId}/claim': 2,
      'GET /v1/runs/{runId}/jobs/{jobId}/status': 1
    })

    // Someone else's running job is not ours, ambiguous attempt or not.
    const { client: other } = makeClient()
    server.inject('claim', { kind: 'drop', count: 1 })
    await expect(other.claim(runId, 'foundation@dev.smoke', 'runner-2')).resolves.toEqual({
      claimed: false,
      currentStatus: 'running'
    })
    expect(other.stats.byRoute['GET /v1/runs/{runId}/jobs/{jobId}/status']).toBe(1)
    // A clean claim of a running job asks nothing more.
    const { client: plain } = makeClient()
    await plain.claim(runId, 'foundation@dev.smoke', 'runner-1')
    expect(plain.stats.requests).toBe(1)
  })

  it('re-mints once on 401 and fails on a second 401', async () => {
    const good = await server.mintToken()
    let handed = 0
    let invalidations = 0
    const flaky: TokenSource = {
      kind: 'oidc',
      mints: 0,
      issued: [],
      async token() {
        handed += 1
        return invalidations === 0 ? 'stale.not.valid' : good
      },
      invalidate() {
        invalidations += 1
      }
    }
    const { client, logs } = makeClient({ tokens: flaky })
    await expect(client.runnable(await createMatrixRun(makeClient().client))).resolves.toEqual(
      expect.arrayContaining(['foundation@dev.smoke'])
    )
    expect(invalidations).toBe(1)
    expect(client.stats).toMatchObject({ requests: 2, tokenRefreshes: 1, retries: 0 })
    expect(logs.join('\n')).not.toContain(good)

    const rejected: TokenSource = { ...flaky, token: async () => 'never.valid.token' }
    const { client: doomed } = makeClient({ tokens: rejected })
    const error = await rejection(doomed.runnable('x'))
    expect(error).toMatchObject({ status: 401, code: 'UNAUTHORIZED' })
    expect(doomed.stats.requests).toBe(2)
    // The stale token, then the re-minted one; the doomed client has its own token().
    expect(handed).toBe(2)

    // A static token cannot be re-minted: one request, one failure.
    const fixed: TokenSource = { ...rejected, kind: 'static' }
    const { client: once } = makeClient({ tokens: fixed })
    expect(await rejection(once.runnable('x'))).toMatchObject({ status: 401 })
    expect(once.stats.requests).toBe(1)
  })

  it('counts every request by route and sends no extra ones', async () => {
    const { client } = makeClient()
    const mark = server.requests.length
    const runId = await createMatrixRun(client)
    await client.runnable(runId)
    await client.claim(runId, 'foundation@dev.smoke', 'r')
    await client.heartbeat(runId, 'foundation@dev.smoke', 'r')
    await client.update(runId, 'foundation@dev.smoke', 'r', 'success')
    await client.listJobs(runId)
    expect(client.stats).toEqual({
      requests: 6,
      rateLimited: 0,
      retries: 0,
      tokenRefreshes: 0,
      byRoute: {
        'POST /v1/runs': 1,
        'GET /v1/runs/{runId}/runnable': 1,
        'POST /v1/runs/{runId}/jobs/{jobId}/claim': 1,
        'POST /v1/runs/{runId}/jobs/{jobId}/heartbeat': 1,
        'POST /v1/runs/{runId}/jobs/{jobId}/update': 1,
        'GET /v1/runs/{runId}/jobs': 1
      }
    })
    // the server saw exactly those: no preflight, no token endpoint call (the token is cached)
    expect(requestsSince(mark).map(request => request.route)).toEqual([
      'createRun',
      'runnable',
      'claim',
      'heartbeat',
      'update',
      'listJobs'
    ])
  })

  it('sends the documented headers', async () => {
    const seen: http.IncomingHttpHeaders[] = []
    const echo = http.createServer((req, res) => {
      seen.push(req.headers)
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'application/json' })
        res.end(JSON.stringify({ ok: true, logRef: 'ref', claimed: true }))
      })
    })
    await new Promise<void>(resolve => echo.listen(0, '127.0.0.1', resolve))
    try {
      const port = (echo.address() as net.AddressInfo).port
      const { client } = makeClient({ baseUrl: `http://127.0.0.1:${port}///` })
      await client.claim('r', 'j', 'runner')
      await client.uploadLog('r', 'j', 'log text')
      expect(seen[0]).toMatchObject({
        authorization: expect.stringMatching(/^Bearer ey/),
        'content-type': 'application/json',
        accept: 'application/json',
        'user-agent': `orun-action/${ACTION_VERSION}`
      })
      expect(seen[1]['content-type']).toBe('text/plain; charset=utf-8')
    } finally {
      await new Promise<void>(resolve => echo.close(() => resolve()))
    }
  })
})

describe('rate limiting against the real token bucket', () => {
  it('a burst beyond the bucket completes by waiting out Retry-After', async () => {
    const limited = await startCoordinationServer({
      ...IMMEDIATE_CONSISTENCY,
      rateLimit: { burst: 3, perSecond: 3 }
    })
    try {
      const sleeps: number[] = []
      const client = new BackendClient({
        baseUrl: limited.url,
        tokens: createTokenSource({ log: () => {} }),
        sleep: ms => {
          sleeps.push(ms)
          return new Promise(resolve => setTimeout(resolve, ms))
        }
      })
      // tokens come from this file's server; the limited one has its own keys
      Object.assign(process.env, limited.tokenEnv())
      const runId = newRunId()
      await client.createRun({ plan: matrixPlan(), runId })
      const answers = await Promise.all(Array.from({ length: 8 }, () => client.runnable(runId)))
      expect(answers.every(jobs => jobs.includes('foundation@dev.smoke'))).toBe(true)
      expect(client.stats.rateLimited).toBeGreaterThan(0)
      expect(client.stats.requests).toBe(9 + client.stats.rateLimited)
      expect(Math.min(...sleeps)).toBeGreaterThanOrEqual(1000)
    } finally {
      Object.assign(process.env, server.tokenEnv())
      await limited.close()
    }
  })
})

describe('proxy settings', () => {
  let proxy: http.Server
  let proxied: string[]

  beforeAll(async () => {
    proxied = []
    const backendPort = Number(new URL(server.url).port)
    // A CONNECT proxy that sends every tunnel to the coordination server, whatever host was asked.
    proxy = http.createServer((_req, res) => {
      res.writeHead(405)
      res.end()
    })
    proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
      proxied.push(req.url ?? '')
      const upstream = net.connect(backendPort, '127.0.0.1', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
        upstream.write(head)
        upstream.pipe(client)
        client.pipe(upstream)
      })
      upstream.on('error', () => client.destroy())
      client.on('error', () => upstream.destroy())
    })
    await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
  })

  afterAll(async () => {
    proxy.closeAllConnections()
    await new Promise<void>(resolve => proxy.close(() => resolve()))
  })

  afterEach(() => {
    restoreEnv()
    Object.assign(process.env, server.tokenEnv())
    proxied.length = 0
  })

  function useProxy(noProxy: string): void {
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`
    for (const key of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) {
      process.env[key] = proxyUrl
    }
    process.env.NO_PROXY = noProxy
    process.env.no_proxy = noProxy
  }

  it('goes through HTTP_PROXY for a host not in NO_PROXY', async () => {
    useProxy('example.org')
    const port = new URL(server.url).port
    const { client } = makeClient({ baseUrl: `http://orun-backend.test:${port}` })
    await expect(client.health()).resolves.toEqual({ status: 'ok', service: 'orun-api' })
    const runId = newRunId()
    await expect(client.createRun({ plan: matrixPlan(), runId })).resolves.toMatchObject({
      created: true
    })
    expect(proxied).toEqual([`orun-backend.test:${port}`, `orun-backend.test:${port}`])
  })

  it('goes direct for a host in NO_PROXY', async () => {
    useProxy('example.org,.test')
    const port = new URL(server.url).port
    const { client } = makeClient({ baseUrl: `http://orun-backend.test:${port}`, maxAttempts: 1 })
    // Direct means resolving the made-up name ourselves, which fails; the proxy never hears of it.
    const error = await rejection(client.health())
    expect(error).toMatchObject({ status: 0, code: 'NETWORK' })
    expect(error.message).toMatch(/ENOTFOUND|EAI_AGAIN/)
    expect(proxied).toEqual([])
  })

  it('goes direct to a loopback backend even with a proxy set', async () => {
    useProxy('')
    const { client } = makeClient()
    await expect(client.health()).resolves.toMatchObject({ status: 'ok' })
    expect(proxied).toEqual([])
  })
})
