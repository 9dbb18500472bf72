/**
 * The bundled run action (dist/run/index.js) and its post step
 * (dist/run-post/index.js) as processes, against the in-process coordination
 * server, with the stand-in orun. Covers input validation (which must fail
 * before any backend request), outputs and summary, argv safety, the post
 * step's clean-up, and what a failed job reports. The multi-runner workflow
 * (exactly-once, DAG order, duplicates, cancel, takeover) is in e2e.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { createTokenSource } from '../src/backend/auth.js'
import { BackendClient } from '../src/backend/client.js'
import { toBackendPlan } from '../src/backend/plan.js'
import { parsePlan, type PlanFile } from '../src/plan/model.js'
import {
  REPO_ROOT,
  cleanupActionProcesses,
  runActionProcess,
  type ActionProcessResult,
  localRunInputs
} from '../testing/action-process.js'
import { errorLines, expectCleanFailure } from '../testing/expect-failure.js'
import { startCoordinationServer, type CoordinationServer } from '../testing/coordination-server.js'
import { Scratch } from '../testing/scratch.js'
import { writePlanCheckout } from '../testing/fixtures.js'

const RUN_BUNDLE = 'dist/run/index.js'
const POST_BUNDLE = 'dist/run-post/index.js'
const FIXTURES = path.resolve(REPO_ROOT, '..', 'shared', 'fixtures', 'plans')
const STATE_KEY = 'orun-in-flight'

let server: CoordinationServer
const scratch = new Scratch([])
const savedEnv = {
  url: process.env.ACTIONS_ID_TOKEN_REQUEST_URL,
  token: process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN
}

beforeAll(async () => {
  server = await startCoordinationServer({ rateLimit: false })
})

afterAll(async () => {
  await server.close()
  cleanupActionProcesses()
  scratch.cleanUp()
  if (savedEnv.url === undefined) delete process.env.ACTIONS_ID_TOKEN_REQUEST_URL
  else process.env.ACTIONS_ID_TOKEN_REQUEST_URL = savedEnv.url
  if (savedEnv.token === undefined) delete process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN
  else process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN = savedEnv.token
})

const tempDir = (prefix: string) => scratch.tempDir(prefix)

const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8')
const planIdOf = (text: string) => parsePlan(text, 'plan.json').id
const freshRunId = () => `gha-7000000001-1-${randomBytes(4).toString('hex')}`

interface Runner {
  cwd: string
  recordFile: string
  /** Every `orun run` the stand-in recorded: argv and the job it ran. */
  executions(): Array<{ job: string; argv: string[]; exitCode: number }>
}

/** A workspace holding plan.json (the given plan text), and a record file for the stand-in. */
function runnerWith(planText: string): Runner {
  const cwd = tempDir('orun-run-ws-')
  writePlanCheckout(cwd, planText)
  const recordFile = path.join(tempDir('orun-run-record-'), 'record.jsonl')
  writeFileSync(recordFile, '')
  return {
    cwd,
    recordFile,
    executions: () =>
      readFileSync(recordFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(line => JSON.parse(line))
  }
}

function runMain(
  runner: Runner,
  inputs: Record<string, string>,
  options: { env?: Record<string, string>; tokens?: boolean } = {}
): Promise<ActionProcessResult> {
  return runActionProcess(RUN_BUNDLE, {
    inputs: {
      ...localRunInputs(server.url),
      ...inputs
    },
    env: {
      ...(options.tokens === false ? {} : server.tokenEnv()),
      ORUN_STANDIN_RECORD: runner.recordFile,
      ...options.env
    },
    cwd: runner.cwd
  })
}

const userFailure = expectCleanFailure

/** A client of the same repository, acting as another runner or a reader. */
function directClient(): BackendClient {
  Object.assign(process.env, server.tokenEnv())
  return new BackendClient({ baseUrl: server.url, tokens: createTokenSource({ log: () => {} }) })
}

describe('run action: inputs are checked before any backend request', () => {
  const single = fixture('single.json')
  const singleId = planIdOf(single)
  const matrix = fixture('remote-state-matrix.json')

  it.each<[string, string, Record<string, string>, RegExp]>([
    [
      'a job not in the plan',
      single,
      { job: 'nope@dev.smoke' },
      /Input 'job' is 'nope@dev\.smoke'.*solo@dev\.smoke/
    ],
    [
      'an unknown environments value',
      matrix,
      { environments: 'dev,prod' },
      /Input 'environments' names 'prod'.*dev, stage/
    ],
    [
      'an unknown components value',
      matrix,
      { components: 'nope' },
      /Input 'components' names 'nope'/
    ],
    [
      "a plan-id that is not the plan file's",
      single,
      { job: 'solo@dev.smoke', 'plan-id': '000000000000' },
      new RegExp(`Input 'plan-id' is '000000000000'.*'${singleId}'`)
    ],
    [
      'an http backend-url that is not loopback',
      single,
      { job: 'solo@dev.smoke', 'backend-url': 'http://orun.example.com' },
      /Input 'backend-url' must be an https:\/\/ URL/
    ],
    [
      'a backend-url that is not a URL',
      single,
      { job: 'solo@dev.smoke', 'backend-url': 'orun backend' },
      /Input 'backend-url' is not a URL/
    ],
    [
      'job together with environments',
      matrix,
      { job: 'api@dev.smoke', environments: 'dev' },
      /'job'.*'environments'.*not both/
    ],
    ['neither job nor a slice', single, {}, /Nothing to run: set 'job'/],
    [
      "a plan job's run id made for another plan",
      single,
      { job: 'solo@dev.smoke', 'run-id': 'gha-7000000001-1-aaaaaaaaaaaa' },
      /already used by a different plan \(aaaaaaaaaaaa\); this job's plan is 5e0143d6b3b9/
    ],
    ['no run-id', single, { job: 'solo@dev.smoke', 'run-id': '' }, /Input 'run-id' is required/],
    [
      'a bad heartbeat-interval',
      single,
      { job: 'solo@dev.smoke', 'heartbeat-interval': 'often' },
      /Input 'heartbeat-interval' must be a positive duration.*'often'/
    ],
    [
      'a zero heartbeat-interval',
      single,
      { job: 'solo@dev.smoke', 'heartbeat-interval': '0s' },
      /Input 'heartbeat-interval'/
    ],
    [
      'a bad on-duplicate',
      single,
      { job: 'solo@dev.smoke', 'on-duplicate': 'retry' },
      /Input 'on-duplicate' must be one of wait, skip, got 'retry'/
    ],
    [
      'an unreadable plan-file',
      single,
      { job: 'solo@dev.smoke', 'plan-file': 'missing.json' },
      /Input 'plan-file' points to .*missing\.json/
    ]
  ])('refuses %s', async (_what, planText, inputs, message) => {
    const runner = runnerWith(planText)
    const before = server.requests.length
    const result = await runMain(runner, { 'run-id': freshRunId(), ...inputs })
    expect(userFailure(result)).toMatch(message)
    expect(server.requests.slice(before)).toEqual([])
    expect(runner.executions()).toEqual([])
  })

  it('without an OIDC token or a static token, asks for id-token: write, with no request', async () => {
    const runner = runnerWith(single)
    const before = server.requests.length
    const result = await runMain(
      runner,
      { 'run-id': freshRunId(), job: 'solo@dev.smoke' },
      { tokens: false }
    )
    expect(userFailure(result)).toMatch(/id-token: write/)
    expect(server.requests.slice(before)).toEqual([])
    expect(runner.executions()).toEqual([])
  })
})

describe('run action: running a job', () => {
  it('runs the job, sets the outputs, writes the summary and stores the log', async () => {
    const plan = fixture('single.json')
    const runner = runnerWith(plan)
    const runId = freshRunId()
    const before = server.requests.length
    const result = await runMain(runner, {
      'run-id': runId,
      job: 'solo@dev.smoke',
      'plan-id': planIdOf(plan)
    })

    expect(result.exitCode).toBe(0)
    expect(result.outputs.status).toBe('success')
    expect(result.outputs['run-id']).toBe(runId)
    const jobResults = JSON.parse(result.outputs['job-results'])
    expect(jobResults).toEqual({
      'solo@dev.smoke': {
        status: 'success',
        duration: expect.any(Number),
        attempts: expect.any(Number),
        tookOver: false
      }
    })
    const logRef = `1001/runs/${runId}/logs/solo@dev.smoke.log`
    const row = result.summary.split('\n').find(line => line.includes('`solo@dev.smoke`'))
    expect(row).toBeDefined()
    expect(row).toContain('| success |')
    expect(row).toContain(`\`${logRef}\``)
    expect(result.summary).toContain(runId)

    const record = server.jobsOf(runId).find(j => j.jobId === 'solo@dev.smoke')!
    expect(record).toMatchObject({ status: 'success', lastError: null, claims: 1 })
    expect(server.storedLog(runId, 'solo@dev.smoke')).toContain('solo dev done')
    const executions = runner.executions()
    expect(executions).toHaveLength(1)
    expect(executions[0].argv).toContain('--local')
    // A fresh run: claim (not initialised), create, claim (repeated while the new run is
    // still initialising, 250 ms here, with a 250 ms backoff that doubles), then the result and the log.
    const routes = server.requests
      .slice(before)
      .filter(r => r.route !== 'token')
      .map(r => r.route)
    const claims = routes.filter(r => r === 'claim').length
    expect(claims).toBeGreaterThanOrEqual(2)
    expect(claims).toBeLessThanOrEqual(5)
    expect(routes.filter(r => r === 'createRun')).toHaveLength(1)
    expect(routes.filter(r => r === 'update')).toHaveLength(1)
    expect(routes).toContain('uploadLog')
  })

  it('runs the job with an orun that has no --local flag, without passing it', async () => {
    const runner = runnerWith(fixture('single.json'))
    const runId = freshRunId()
    const result = await runMain(
      runner,
      { 'run-id': runId, job: 'solo@dev.smoke' },
      { env: { ORUN_STANDIN_NO_LOCAL_FLAG: '1' } }
    )
    expect(result.exitCode).toBe(0)
    expect(result.outputs.status).toBe('success')
    const executions = runner.executions()
    expect(executions).toHaveLength(1)
    expect(executions[0].exitCode).toBe(0)
    expect(executions[0].argv).not.toContain('--local')
    expect(server.jobsOf(runId)[0].status).toBe('success')
  })

  it('passes a job id full of shell syntax to orun as one plain argument', async () => {
    const home = tempDir('orun-run-home-')
    writeFileSync(path.join(home, 'canary'), 'still here')
    const hostile = [
      "a'; rm -rf ~ #@dev.x",
      'b"; touch pwned; echo "@dev.y',
      'c$(touch pwned2)`touch pwned3`@dev.z'
    ]
    const file: PlanFile = {
      metadata: { name: 'hostile', checksum: 'sha256-' + 'ab12'.repeat(16) },
      jobs: hostile.map(id => ({
        id,
        component: id.split('@')[0],
        environment: 'weird',
        dependsOn: [],
        steps: [{ id: 'smoke', run: 'echo "job $ORUN_JOB_ID ran"' }]
      }))
    }
    const runner = runnerWith(JSON.stringify(file))
    const runId = freshRunId()
    const result = await runMain(
      runner,
      { 'run-id': runId, environments: 'weird' },
      { env: { HOME: home } }
    )

    expect(result.exitCode).toBe(0)
    expect(result.outputs.status).toBe('success')
    const executions = runner.executions()
    expect(executions.map(e => e.job)).toEqual(hostile)
    for (const [index, id] of hostile.entries()) {
      expect(executions[index].argv).toContain(`--job=${id}`)
    }
    expect(Object.keys(JSON.parse(result.outputs['job-results']))).toEqual(hostile)
    expect(server.jobsOf(runId).map(j => [j.jobId, j.status])).toEqual(
      hostile.map(id => [id, 'success'])
    )
    expect(readFileSync(path.join(home, 'canary'), 'utf8')).toBe('still here')
    for (const dir of [runner.cwd, home]) {
      expect(readdirSync(dir).filter(name => name.startsWith('pwned'))).toEqual([])
    }
    expect(server.storedLog(runId, hostile[0])).toContain(`job ${hostile[0]} ran`)
  })

  it("reports a failing job's exit code and last output lines to the backend", async () => {
    const plan = fixture('failing-upstream.json')
    const runner = runnerWith(plan)
    const runId = freshRunId()
    const result = await runMain(runner, { 'run-id': runId, job: 'foundation@dev.smoke' })

    // orun's own ::error:: line passes through; the action adds its own, last.
    expect(result.exitCode).toBe(1)
    expect(errorLines(result).at(-1)).toMatch(
      /foundation@dev\.smoke: failed: orun exited with code 3/
    )
    expect(result.outputs.status).toBe('failed')
    expect(JSON.parse(result.outputs['job-results'])['foundation@dev.smoke'].status).toBe('failed')
    const record = server.jobsOf(runId).find(j => j.jobId === 'foundation@dev.smoke')!
    expect(record.status).toBe('failed')
    expect(record.lastError).toMatch(/orun exited with code 3/)
    expect(record.lastError).toContain('foundation dev start')
    expect(record.lastError).toContain('foundation dev done')
    expect(server.storedLog(runId, 'foundation@dev.smoke')).toContain('foundation dev done')
  })
})

describe('run action: a run id that belongs to another plan', () => {
  it('refuses a run created from a different plan with the same job ids, running nothing', async () => {
    const planText = fixture('single.json')
    const plan = parsePlan(planText, 'plan.json')
    const runId = freshRunId()
    const created = await directClient().createRun({
      plan: toBackendPlan(plan.file, 'ffffffffffff'),
      runId
    })
    expect(created.created).toBe(true)
    const runner = runnerWith(planText)

    const message = userFailure(await runMain(runner, { 'run-id': runId, job: 'solo@dev.smoke' }))
    // Caught before any claim: the run's plan checksum is read once and compared.
    expect(message).toMatch(/already used by a different plan \(ffffffffffff\)/)
    expect(message).toContain(runId)
    expect(runner.executions()).toEqual([])
    expect(server.jobsOf(runId)[0]).toMatchObject({ status: 'pending', claims: 0 })
  })

  it('refuses a run created from a plan without this job, running nothing', async () => {
    const other = parsePlan(fixture('remote-state-matrix.json'), 'other.json')
    const runId = freshRunId()
    await directClient().createRun({ plan: toBackendPlan(other.file, other.id), runId })
    const runner = runnerWith(fixture('single.json'))

    const message = userFailure(await runMain(runner, { 'run-id': runId, job: 'solo@dev.smoke' }))
    expect(message).toMatch(/(different|another) plan/)
    expect(message).toContain(runId)
    expect(runner.executions()).toEqual([])
  })
})

describe('run action: post step', () => {
  it('does nothing without saved state: exit 0 and no request', async () => {
    const before = server.requests.length
    const result = await runActionProcess(POST_BUNDLE, {
      inputs: {},
      env: server.tokenEnv()
    })
    expect(result.exitCode).toBe(0)
    expect(errorLines(result)).toEqual([])
    expect(server.requests.slice(before)).toEqual([])
  })

  it('does nothing when the main step reported every job it claimed', async () => {
    const before = server.requests.length
    const state = {
      backendUrl: server.url,
      audience: 'orun',
      runId: freshRunId(),
      runnerId: 'runner-done',
      jobs: []
    }
    const result = await runActionProcess(POST_BUNDLE, {
      inputs: {},
      env: { ...server.tokenEnv(), [`STATE_${STATE_KEY}`]: JSON.stringify(state) }
    })
    expect(result.exitCode).toBe(0)
    expect(server.requests.slice(before)).toEqual([])
  })

  it('marks an unreported claimed job failed (cancelled) and uploads its redacted spool', async () => {
    const plan = parsePlan(fixture('single.json'), 'plan.json')
    const runId = freshRunId()
    const runnerId = 'runner-crashed-1'
    const client = directClient()
    await client.createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
    await server.whenVisible(runId)
    expect((await client.claim(runId, 'solo@dev.smoke', runnerId)).claimed).toBe(true)

    const spoolDir = tempDir('orun-run-spool-')
    mkdirSync(spoolDir, { recursive: true })
    const spoolFile = path.join(spoolDir, 'log-0.txt')
    const secret = 'db-password-9f8e7d'
    writeFileSync(
      spoolFile,
      `solo dev start\nconnecting with ${secret}\nsession key-abc-123-late\n::add-mask::key-abc-123-late\n`
    )
    const state = {
      backendUrl: server.url,
      audience: 'orun',
      runId,
      runnerId,
      jobs: [{ jobId: 'solo@dev.smoke', spoolFile }]
    }
    const result = await runActionProcess(POST_BUNDLE, {
      inputs: { 'redact-env': 'DB_PASSWORD' },
      env: {
        ...server.tokenEnv(),
        DB_PASSWORD: secret,
        [`STATE_${STATE_KEY}`]: JSON.stringify(state)
      }
    })

    expect(result.exitCode).toBe(0)
    expect(result.stdout).toContain('marking it failed (cancelled)')
    const record = server.jobsOf(runId)[0]
    expect(record).toMatchObject({ status: 'failed', runnerId })
    expect(record.lastError).toMatch(/cancelled/)
    const log = server.storedLog(runId, 'solo@dev.smoke')
    expect(log).toContain('solo dev start')
    expect(log).toContain('[orun action: the job was cancelled]')
    expect(log).not.toContain(secret)
    expect(log).not.toContain('key-abc-123-late')
    expect(log).toContain('connecting with ***')
    // It saved that nothing is left to clean up.
    expect(JSON.parse(result.state[STATE_KEY]).jobs).toEqual([])
  })

  it('leaves a job alone that another runner took over meanwhile: its result and its log', async () => {
    const plan = parsePlan(fixture('single.json'), 'plan.json')
    const runId = freshRunId()
    const client = directClient()
    await client.createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
    await server.whenVisible(runId)
    await client.claim(runId, 'solo@dev.smoke', 'runner-new-owner')
    await client.uploadLog(runId, 'solo@dev.smoke', 'the new owner streams this log\n')
    const spoolFile = path.join(tempDir('orun-run-old-'), 'log-0.txt')
    writeFileSync(spoolFile, 'what the old runner printed\n')
    const state = {
      backendUrl: server.url,
      audience: 'orun',
      runId,
      runnerId: 'runner-old-owner',
      jobs: [{ jobId: 'solo@dev.smoke', spoolFile }]
    }
    const result = await runActionProcess(POST_BUNDLE, {
      inputs: {},
      env: { ...server.tokenEnv(), [`STATE_${STATE_KEY}`]: JSON.stringify(state) }
    })
    expect(result.exitCode).toBe(0)
    expect(result.stdout).not.toMatch(/::warning::/)
    expect(server.jobsOf(runId)[0]).toMatchObject({
      status: 'running',
      runnerId: 'runner-new-owner'
    })
    expect(server.storedLog(runId, 'solo@dev.smoke')).toBe('the new owner streams this log\n')
  })
})
