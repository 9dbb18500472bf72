/**
 * The claim loop against the in-process coordination server: every row of the
 * protocol's claim table, the wait for dependencies, and what it costs in
 * requests. Sleeps are instant and advance a fake clock; the server is real.
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { createTokenSource } from '../src/backend/auth.js'
import { BackendClient } from '../src/backend/client.js'
import { toBackendPlan } from '../src/backend/plan.js'
import { joinRun } from '../src/backend/session.js'
import { UserError } from '../src/common/errors.js'
import { parsePlan, type Plan } from '../src/plan/model.js'
import { acquireJob, type AcquireContext, type AcquireStats } from '../src/run/acquire.js'
import {
  startCoordinationServer,
  type CoordinationServer,
  IMMEDIATE_CONSISTENCY
} from '../testing/coordination-server.js'
import { silenceWorkflowCommands } from '../testing/quiet.js'

const TOKEN_ENV = ['ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN'] as const
const savedEnv = Object.fromEntries(TOKEN_ENV.map(name => [name, process.env[name]]))

let server: CoordinationServer

/** Points the OIDC token request at a server, as the runner's environment would. */
function useTokensOf(target: CoordinationServer): void {
  Object.assign(process.env, target.tokenEnv())
}

beforeAll(async () => {
  silenceWorkflowCommands()
  server = await startCoordinationServer({ ...IMMEDIATE_CONSISTENCY, rateLimit: false })
  useTokensOf(server)
})

afterAll(async () => {
  jest.restoreAllMocks()
  await server.close()
  for (const name of TOKEN_ENV) {
    if (savedEnv[name] === undefined) delete process.env[name]
    else process.env[name] = savedEnv[name]
  }
})

function planOf(jobs: Record<string, string[]>, checksum = 'sha256-aaaa1111bbbb2222'): Plan {
  return parsePlan(
    JSON.stringify({
      metadata: { checksum },
      jobs: Object.entries(jobs).map(([id, dependsOn]) => ({
        id,
        component: id.split('@')[0],
        environment: 'dev',
        dependsOn,
        steps: [{ id: 'smoke', run: 'true' }]
      }))
    }),
    'plan.json'
  )
}

const freshRunId = () => `run-${randomBytes(4).toString('hex')}`

function newClient(target: CoordinationServer = server): BackendClient {
  return new BackendClient({ baseUrl: target.url, tokens: createTokenSource({ log: () => {} }) })
}

/** Another runner of the same run, driven by hand. */
function otherRunner(runId: string, target: CoordinationServer = server) {
  const client = newClient(target)
  const runnerId = `other-${randomBytes(3).toString('hex')}`
  return {
    runnerId,
    client,
    claim: (jobId: string) => client.claim(runId, jobId, runnerId),
    finish: (jobId: string, status: 'success' | 'failed', error?: string) =>
      client.update(runId, jobId, runnerId, status, error)
  }
}

interface Harness {
  ctx: AcquireContext
  client: BackendClient
  delays: number[]
  logs: string[]
  ensureRun: jest.Mock<() => Promise<void>>
}

/**
 * An acquire context with a real client and a fake clock: each sleep returns at
 * once, records the delay, moves the clock on, then runs `onSleep` (the other
 * runners' moves).
 */
function harness(
  plan: Plan,
  runId: string,
  options: Partial<AcquireContext> & { onSleep?: (count: number) => Promise<void> | void } = {}
): Harness {
  const { onSleep, ...overrides } = options
  const client = newClient()
  const delays: number[] = []
  const logs: string[] = []
  let clock = Date.now()
  const ensureRun = jest.fn(async () => {
    await joinRun(client, plan, runId)
  })
  const ctx: AcquireContext = {
    client,
    plan,
    runId,
    runnerId: `me-${randomBytes(3).toString('hex')}`,
    onDuplicate: 'wait',
    dependencyTimeoutMs: 30 * 60_000,
    staleHeartbeatMs: 90_000,
    ensureRun,
    sleep: async ms => {
      delays.push(ms)
      clock += ms
      await onSleep?.(delays.length)
    },
    now: () => clock,
    random: () => 0.5,
    log: message => logs.push(message),
    ...overrides
  }
  return { ctx, client, delays, logs, ensureRun }
}

async function createRun(plan: Plan, runId: string): Promise<void> {
  const result = await newClient().createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
  expect(result.created).toBe(true)
}

const stored = (runId: string, jobId: string) => server.jobsOf(runId).find(j => j.jobId === jobId)

/** a -> b -> c, and a lone root x. */
const chain = planOf({ 'a@dev': [], 'b@dev': ['a@dev'], 'c@dev': ['b@dev'], 'x@dev': [] })

describe('acquireJob: claimed', () => {
  it('claims a root job of an existing run with exactly one request, without sleeping', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const h = harness(chain, runId)
    const stats: AcquireStats = { waitedMs: 0, polls: 0 }

    await expect(acquireJob(h.ctx, 'a@dev', stats)).resolves.toEqual({
      kind: 'claimed',
      takeover: false
    })
    expect(h.client.stats.requests).toBe(1)
    expect(h.client.stats.byRoute).toEqual({ 'POST /v1/runs/{runId}/jobs/{jobId}/claim': 1 })
    expect(h.delays).toEqual([])
    expect(stats).toEqual({ waitedMs: 0, polls: 1 })
    expect(h.ensureRun).not.toHaveBeenCalled()
    expect(stored(runId, 'a@dev')).toMatchObject({
      status: 'running',
      runnerId: h.ctx.runnerId,
      claims: 1
    })
  })

  it('creates the run when the first claim finds it not initialised, once, then claims', async () => {
    const runId = freshRunId()
    const h = harness(chain, runId)

    await expect(acquireJob(h.ctx, 'a@dev')).resolves.toEqual({ kind: 'claimed', takeover: false })
    expect(h.ensureRun).toHaveBeenCalledTimes(1)
    expect(h.client.stats.byRoute).toEqual({
      'POST /v1/runs/{runId}/jobs/{jobId}/claim': 2,
      'POST /v1/runs': 1
    })
    expect(stored(runId, 'a@dev')).toMatchObject({ status: 'running', runnerId: h.ctx.runnerId })
    // The run it created is the whole plan, not just this job.
    expect(server.jobsOf(runId).map(j => j.jobId)).toEqual(['a@dev', 'b@dev', 'c@dev', 'x@dev'])
  })

  it('creates the run when a dependent finds it not initialised, then waits and claims', async () => {
    const runId = freshRunId()
    const other = otherRunner(runId)
    const h = harness(chain, runId, {
      onSleep: async count => {
        // Once the run exists, another runner runs a, then reports it.
        if (count === 2) expect((await other.claim('a@dev')).claimed).toBe(true)
        if (count === 3) await other.finish('a@dev', 'success')
      }
    })

    await expect(acquireJob(h.ctx, 'b@dev')).resolves.toEqual({ kind: 'claimed', takeover: false })
    expect(h.ensureRun).toHaveBeenCalledTimes(1)
    expect(stored(runId, 'b@dev')).toMatchObject({ status: 'running', runnerId: h.ctx.runnerId })
  })

  it('takes over a running job whose owner stopped heartbeating', async () => {
    server.setOptions({ heartbeatTimeoutMs: 50 })
    try {
      const runId = freshRunId()
      await createRun(chain, runId)
      const lost = otherRunner(runId)
      expect((await lost.claim('x@dev')).claimed).toBe(true)
      await new Promise(resolve => setTimeout(resolve, 120))
      const h = harness(chain, runId)

      await expect(acquireJob(h.ctx, 'x@dev')).resolves.toEqual({
        kind: 'claimed',
        takeover: true
      })
      expect(h.client.stats.requests).toBe(1)
      expect(stored(runId, 'x@dev')).toMatchObject({
        status: 'running',
        runnerId: h.ctx.runnerId,
        claims: 2
      })
    } finally {
      server.setOptions({ heartbeatTimeoutMs: 300_000 })
    }
  })
})

describe('acquireJob: a run the service has just created (transient 404)', () => {
  it('rides out claims answered 404 while the new run initialises, creating it once', async () => {
    const lagging = await startCoordinationServer({ rateLimit: false, initLagMs: 400 })
    useTokensOf(lagging)
    try {
      const runId = freshRunId()
      const client = newClient(lagging)
      const h = harness(chain, runId, {
        client,
        ensureRun: async () => {
          await joinRun(client, chain, runId)
        },
        // The fake clock moves at once; the real one must pass the lag, so each sleep waits a little.
        onSleep: () => new Promise(resolve => setTimeout(resolve, 100))
      })
      await expect(acquireJob(h.ctx, 'a@dev')).resolves.toEqual({
        kind: 'claimed',
        takeover: false
      })
      expect(client.stats.byRoute['POST /v1/runs']).toBe(1)
      // the first claim found no run, at least one more met the lag, the last one claimed
      expect(
        client.stats.byRoute['POST /v1/runs/{runId}/jobs/{jobId}/claim']
      ).toBeGreaterThanOrEqual(3)
      expect(lagging.jobsOf(runId).find(j => j.jobId === 'a@dev')).toMatchObject({
        status: 'running',
        runnerId: h.ctx.runnerId
      })
    } finally {
      useTokensOf(server)
      await lagging.close()
    }
  })

  it('gives up with a clear error when the run never becomes visible', async () => {
    const stuck = await startCoordinationServer({ rateLimit: false, initLagMs: 3_600_000 })
    useTokensOf(stuck)
    try {
      const runId = freshRunId()
      const client = newClient(stuck)
      const h = harness(chain, runId, {
        client,
        ensureRun: async () => {
          await joinRun(client, chain, runId)
        }
      })
      const error = await acquireJob(h.ctx, 'a@dev').catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(UserError)
      expect((error as Error).message).toMatch(
        new RegExp(`still does not know run ${runId} 120 s after`)
      )
      // bounded by the grace in the injected clock, with a short backoff capped at 4 s (+50 %)
      const waited = h.delays.reduce((a, b) => a + b, 0)
      expect(waited).toBeGreaterThanOrEqual(120_000)
      expect(waited).toBeLessThan(120_000 + 6_000)
      expect(Math.max(...h.delays)).toBeLessThanOrEqual(6_000)
    } finally {
      useTokensOf(server)
      await stuck.close()
    }
  })
})

describe('acquireJob: waiting for dependencies', () => {
  it('polls while the dependency runs (depsWaiting), and claims soon after it succeeds', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    expect((await other.claim('a@dev')).claimed).toBe(true)
    let requestsWhenDone = -1
    const h = harness(chain, runId, {
      onSleep: async count => {
        if (count === 5) {
          await other.finish('a@dev', 'success')
          requestsWhenDone = h.client.stats.requests
        }
      }
    })
    const stats: AcquireStats = { waitedMs: 0, polls: 0 }

    await expect(acquireJob(h.ctx, 'b@dev', stats)).resolves.toEqual({
      kind: 'claimed',
      takeover: false
    })
    // Claims answered depsWaiting came before the one that took the job.
    expect(h.client.stats.byRoute['POST /v1/runs/{runId}/jobs/{jobId}/claim']).toBeGreaterThan(1)
    expect(h.client.stats.requests - requestsWhenDone).toBeLessThanOrEqual(2)
    expect(stored(runId, 'b@dev')).toMatchObject({ status: 'running', runnerId: h.ctx.runnerId })
    expect(stats.polls).toBe(h.client.stats.requests)
    expect(stats.waitedMs).toBe(h.delays.reduce((sum, ms) => sum + ms, 0))
    expect(h.logs.some(line => line.includes('a@dev (running'))).toBe(true)
    expect(h.ensureRun).not.toHaveBeenCalled()
  })

  it('is blocked, naming the dependency, when a claim answers depsBlocked', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    expect((await other.claim('a@dev')).claimed).toBe(true)
    const h = harness(chain, runId, {
      onSleep: async count => {
        if (count === 3) await other.finish('a@dev', 'failed', 'exit 3: terraform apply failed')
      }
    })

    const result = await acquireJob(h.ctx, 'b@dev')
    expect(result.kind).toBe('blocked')
    const upstream = result.kind === 'blocked' ? result.upstream : []
    expect(upstream.map(u => [u.jobId, u.lastError])).toEqual([
      ['a@dev', 'exit 3: terraform apply failed']
    ])
    expect(stored(runId, 'b@dev')).toMatchObject({ status: 'pending', claims: 0 })
  })

  it('is blocked by a failed grandparent while the parent is still pending', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    await other.claim('a@dev')
    await other.finish('a@dev', 'failed', 'boom')
    const h = harness(chain, runId)

    const result = await acquireJob(h.ctx, 'c@dev')
    expect(result).toEqual({
      kind: 'blocked',
      upstream: [expect.objectContaining({ jobId: 'a@dev', status: 'failed', lastError: 'boom' })]
    })
    // One look at the run is enough to know.
    expect(h.client.stats.requests).toBeLessThanOrEqual(2)
    expect(stored(runId, 'c@dev')!.claims).toBe(0)
  })

  it('gives up after the dependency timeout, naming what is still not done', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    await other.claim('a@dev')
    const timeoutMs = 10 * 60_000
    const h = harness(chain, runId, { dependencyTimeoutMs: timeoutMs })
    const stats: AcquireStats = { waitedMs: 0, polls: 0 }

    const failure = acquireJob(h.ctx, 'b@dev', stats)
    await expect(failure).rejects.toThrow(UserError)
    await expect(failure).rejects.toThrow(/b@dev.*a@dev \(running \d+s\).*dependency-timeout/s)
    expect(stats.waitedMs).toBeGreaterThanOrEqual(timeoutMs)
    // It does not sleep past the deadline by more than its first look at the run.
    expect(stats.waitedMs).toBeLessThan(timeoutMs + 60_000)
    expect(stats.polls).toBe(h.client.stats.requests)
    // Ten minutes of waiting on a dependency with no estimate stays cheap.
    expect(h.client.stats.requests).toBeLessThan(200)
    expect(stored(runId, 'b@dev')).toMatchObject({ status: 'pending', claims: 0 })
  })

  it('names a dependency that has not even started when giving up', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const h = harness(chain, runId, { dependencyTimeoutMs: 60_000 })
    await expect(acquireJob(h.ctx, 'b@dev')).rejects.toThrow(/a@dev \(pending\)/)
  })
})

describe('acquireJob: a job another runner owns or finished', () => {
  it('skips a running job with on-duplicate skip, naming its owner', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    await other.claim('x@dev')
    const h = harness(chain, runId, { onDuplicate: 'skip' })

    await expect(acquireJob(h.ctx, 'x@dev')).resolves.toEqual({
      kind: 'skipped',
      owner: other.runnerId
    })
    expect(h.client.stats.requests).toBeLessThanOrEqual(2)
    expect(stored(runId, 'x@dev')).toMatchObject({ runnerId: other.runnerId, claims: 1 })
  })

  it.each([
    ['success', null],
    ['failed', 'exit 2: smoke test failed']
  ] as const)('waits for a running job and mirrors its %s', async (status, error) => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    await other.claim('x@dev')
    const h = harness(chain, runId, {
      onDuplicate: 'wait',
      onSleep: async count => {
        if (count === 2) await other.finish('x@dev', status, error ?? undefined)
      }
    })

    await expect(acquireJob(h.ctx, 'x@dev')).resolves.toEqual({
      kind: 'finished',
      status,
      lastError: error,
      mirrored: true
    })
    // It never ran the job itself.
    expect(stored(runId, 'x@dev')).toMatchObject({ runnerId: other.runnerId, claims: 1 })
    expect(h.logs.some(line => /already running on another runner/.test(line))).toBe(true)
  })

  it('waits for a dependent job that another runner already runs, and mirrors it', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    await other.claim('a@dev')
    await other.finish('a@dev', 'success')
    await other.claim('b@dev')
    const h = harness(chain, runId, {
      onSleep: async count => {
        if (count === 3) await other.finish('b@dev', 'success')
      }
    })
    await expect(acquireJob(h.ctx, 'b@dev')).resolves.toMatchObject({
      kind: 'finished',
      status: 'success',
      mirrored: true
    })
    expect(stored(runId, 'b@dev')).toMatchObject({ runnerId: other.runnerId, claims: 1 })
  })

  it('gives up on a duplicate owner that stops heartbeating, naming it', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    await other.claim('x@dev')
    // The owner never heartbeats; the backend's (real-time) takeover window keeps refusing a takeover.
    const h = harness(chain, runId, { dependencyTimeoutMs: 5 * 60_000, staleHeartbeatMs: 90_000 })
    const failure = acquireJob(h.ctx, 'x@dev')
    await expect(failure).rejects.toThrow(UserError)
    await expect(failure).rejects.toThrow(new RegExp(`x@dev.*${other.runnerId}.*on-duplicate`))
  })

  it('keeps mirroring a long job for as long as its owner heartbeats', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    await other.claim('x@dev')
    const start = Date.now()
    let finished = false
    // Far past the dependency timeout on the fake clock, the owner finishes: its result is mirrored.
    const h: Harness = harness(chain, runId, {
      dependencyTimeoutMs: 60_000,
      staleHeartbeatMs: 1e12,
      onSleep: async () => {
        if (!finished && h.ctx.now() - start > 5 * 60_000) {
          finished = true
          await other.finish('x@dev', 'success')
        }
      }
    })
    await expect(acquireJob(h.ctx, 'x@dev')).resolves.toMatchObject({
      kind: 'finished',
      status: 'success',
      mirrored: true
    })
  })

  it.each([
    ['success', null],
    ['failed', 'exit 1: lint failed']
  ] as const)('reports a job that already ended %s without running it', async (status, error) => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    await other.claim('x@dev')
    await other.finish('x@dev', status, error ?? undefined)
    const h = harness(chain, runId)

    await expect(acquireJob(h.ctx, 'x@dev')).resolves.toEqual({
      kind: 'finished',
      status,
      lastError: error,
      mirrored: false,
      runnerId: other.runnerId
    })
    expect(h.client.stats.requests).toBeLessThanOrEqual(2)
    expect(stored(runId, 'x@dev')!.claims).toBe(1)
  })

  it('learns that a dependent job already ended from the job list, without claiming', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const other = otherRunner(runId)
    for (const job of ['a@dev', 'b@dev']) {
      await other.claim(job)
      await other.finish(job, 'success')
    }
    const h = harness(chain, runId)
    await expect(acquireJob(h.ctx, 'b@dev')).resolves.toMatchObject({
      kind: 'finished',
      status: 'success',
      mirrored: false
    })
    expect(h.client.stats.byRoute['POST /v1/runs/{runId}/jobs/{jobId}/claim']).toBeUndefined()
  })
})

describe('acquireJob: a run made from another plan', () => {
  it('refuses a job the backend run does not have, with a UserError naming it', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const otherPlan = planOf({ 'solo@dev': [] }, 'sha256-cccc3333dddd4444')
    const h = harness(otherPlan, runId)

    const failure = acquireJob(h.ctx, 'solo@dev')
    await expect(failure).rejects.toThrow(UserError)
    await expect(failure).rejects.toThrow(new RegExp(`${runId} has no job solo@dev`))
    expect(h.ensureRun).not.toHaveBeenCalled()
  })

  it('refuses a deep job the backend run does not have without waiting for the timeout', async () => {
    const runId = freshRunId()
    await createRun(chain, runId)
    const otherPlan = planOf(
      { 'p@dev': [], 'q@dev': ['p@dev'], 'r@dev': ['q@dev'] },
      'sha256-cccc3333dddd4444'
    )
    const h = harness(otherPlan, runId, { dependencyTimeoutMs: 30 * 60_000 })

    await expect(acquireJob(h.ctx, 'r@dev')).rejects.toThrow(/no job r@dev/)
    // The job list already shows the run has no such job: no half-hour wait.
    expect(h.delays.reduce((sum, ms) => sum + ms, 0)).toBeLessThan(60_000)
  })
})

describe('acquireJob under the shared rate limit', () => {
  it('claims every root job of a crowd exactly once, riding out 429s', async () => {
    const limited = await startCoordinationServer(IMMEDIATE_CONSISTENCY)
    useTokensOf(limited)
    try {
      const jobs = Object.fromEntries(
        Array.from({ length: 26 }, (_, i) => [`job${i}@dev`, [] as string[]])
      )
      const plan = planOf(jobs)
      const runId = freshRunId()
      await newClient(limited).createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
      const runners = Object.keys(jobs).map(jobId => {
        const client = newClient(limited)
        const ctx: AcquireContext = {
          client,
          plan,
          runId,
          runnerId: `runner-${jobId}`,
          onDuplicate: 'wait',
          dependencyTimeoutMs: 60_000,
          staleHeartbeatMs: 90_000,
          ensureRun: async () => {
            throw new Error('the run exists')
          },
          sleep: async () => {},
          now: Date.now,
          log: () => {}
        }
        return { jobId, client, done: acquireJob(ctx, jobId) }
      })
      const results = await Promise.all(runners.map(r => r.done))

      expect(results.every(r => r.kind === 'claimed' && !r.takeover)).toBe(true)
      const storedJobs = limited.jobsOf(runId)
      expect(storedJobs.every(j => j.status === 'running' && j.claims === 1)).toBe(true)
      for (const { jobId } of runners) {
        expect(storedJobs.find(j => j.jobId === jobId)!.runnerId).toBe(`runner-${jobId}`)
      }
      const rateLimited = runners.reduce((sum, r) => sum + r.client.stats.rateLimited, 0)
      expect(rateLimited).toBeGreaterThan(0)
      expect(limited.requests.filter(r => r.status === 429)).toHaveLength(rateLimited)
    } finally {
      useTokensOf(server)
      await limited.close()
    }
  })
})
