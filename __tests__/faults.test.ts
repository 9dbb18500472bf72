/**
 * The fault-and-abuse suite, fault half (issue #11): the bundled run action and
 * its post step as processes (one per runner), a fault-injecting proxy
 * (testing/fault-proxy.ts) between them and the local coordination server,
 * real signals, and stand-in orun steps that misbehave. Each test waits on
 * what the proxy or the server saw, not on the clock. Long shipped budgets are
 * shrunk per process with ORUN_ACTION_BUDGET_SCALE where a test needs them to
 * run out (docs/reliability.md). Plan-content and leak cases live in
 * abuse.test.ts; docs/reliability.md has one row per test of both.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  STANDIN_DIR,
  cleanupActionProcesses,
  runActionProcess,
  startActionProcess,
  type ActionProcessResult,
  type StartedActionProcess
} from '../testing/action-process.js'
import { startCoordinationServer, type CoordinationServer } from '../testing/coordination-server.js'
import { expectCleanFailure } from '../testing/expect-failure.js'
import { HTML_ERROR_PAGE, startFaultProxy, type FaultProxy } from '../testing/fault-proxy.js'
import { sharedPlanText, writePlanCheckout } from '../testing/fixtures.js'
import { Scratch } from '../testing/scratch.js'

const RUN_BUNDLE = 'dist/run/index.js'
const POST_BUNDLE = 'dist/run-post/index.js'
const PROCESS_TIMEOUT_MS = 120_000

let server: CoordinationServer
let proxy: FaultProxy
const scratch = new Scratch([])

beforeAll(async () => {
  server = await startCoordinationServer({ rateLimit: false })
})

beforeEach(async () => {
  proxy = await startFaultProxy(server.url)
})

afterEach(async () => {
  await proxy.close()
})

afterAll(async () => {
  await server.close()
  cleanupActionProcesses()
  scratch.cleanUp()
})

const tempDir = (prefix: string) => scratch.tempDir(prefix)

interface Scenario {
  runId: string
  jobId: string
  cwd: string
  /** A file the step may write its pid (or its child's) into. */
  pidFile: string
  executions(): Array<{ job: string; exitCode: number }>
}

/**
 * A one-job plan (the shared single fixture's shape) whose step is `run`, with a fresh
 * checksum, so every test has a run of its own.
 */
function scenario(run: string, component = 'solo'): Scenario {
  const plan = JSON.parse(sharedPlanText('single')) as {
    metadata: { checksum: string }
    jobs: Array<{ id: string; component: string; steps: Array<{ run: string }> }>
  }
  plan.jobs[0].id = `${component}@dev.smoke`
  plan.jobs[0].component = component
  const checksum = randomBytes(32).toString('hex')
  plan.metadata.checksum = `sha256-${checksum}`
  const cwd = tempDir('orun-faults-ws-')
  const pidFile = path.join(cwd, 'step.pid')
  plan.jobs[0].steps[0].run = run.replaceAll('PIDFILE', pidFile)
  writePlanCheckout(cwd, JSON.stringify(plan, null, 2))
  const recordFile = path.join(cwd, 'record.jsonl')
  writeFileSync(recordFile, '')
  return {
    runId: `gha-7000000001-1-${checksum.slice(0, 12)}`,
    jobId: `${component}@dev.smoke`,
    cwd,
    pidFile,
    executions: () =>
      readFileSync(recordFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(line => JSON.parse(line))
  }
}

interface StartOptions {
  /** ORUN_ACTION_BUDGET_SCALE for this process. */
  scale?: number
  inputs?: Record<string, string>
  /** Route the OIDC token request through the proxy too. */
  tokenViaProxy?: boolean
  backendUrl?: string
}

function processOptions(s: Scenario, options: StartOptions) {
  const tokenEnv = server.tokenEnv()
  if (options.tokenViaProxy)
    tokenEnv.ACTIONS_ID_TOKEN_REQUEST_URL = tokenEnv.ACTIONS_ID_TOKEN_REQUEST_URL.replace(
      server.url,
      proxy.url
    )
  return {
    inputs: {
      'backend-url': options.backendUrl ?? proxy.url,
      'orun-path': STANDIN_DIR,
      'plan-file': 'plan.json',
      'run-id': s.runId,
      job: s.jobId,
      'heartbeat-interval': '1s',
      'log-upload-interval': '1s',
      ...options.inputs
    },
    env: {
      ...tokenEnv,
      ORUN_STANDIN_RECORD: path.join(s.cwd, 'record.jsonl'),
      ...(options.scale ? { ORUN_ACTION_BUDGET_SCALE: String(options.scale) } : {})
    },
    cwd: s.cwd,
    timeoutMs: PROCESS_TIMEOUT_MS
  }
}

function startMain(s: Scenario, options: StartOptions = {}): StartedActionProcess {
  return startActionProcess(RUN_BUNDLE, processOptions(s, options))
}

/** The post step, as the runner starts it after the main step: with the state it saved. */
function runPost(
  s: Scenario,
  main: ActionProcessResult,
  options: StartOptions = {}
): Promise<ActionProcessResult> {
  const base = processOptions(s, options)
  const state = Object.fromEntries(
    Object.entries(main.state).map(([key, value]) => [`STATE_${key}`, value])
  )
  return runActionProcess(POST_BUNDLE, { ...base, env: { ...base.env, ...state } })
}

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

const storedJob = (s: Scenario) => server.jobsOf(s.runId).find(job => job.jobId === s.jobId)

/** A live process (a zombie waiting for its parent to reap it counts as gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return process.platform === 'linux' ? false : true
  }
}

const stepPid = (s: Scenario) =>
  existsSync(s.pidFile) && readFileSync(s.pidFile, 'utf8').trim()
    ? Number(readFileSync(s.pidFile, 'utf8').trim())
    : undefined

/** How many sessions the running action has saved for its job's processes (see JobProcessTracker). */
function trackedSessions(main: StartedActionProcess): number {
  const raw = main.state()['orun-in-flight']
  const jobs = raw
    ? (JSON.parse(raw) as { jobs: Array<{ orunProcesses?: { sessions: number[] } }> }).jobs
    : []
  return jobs[0]?.orunProcesses?.sessions.length ?? 0
}

const savedJobs = (result: ActionProcessResult) =>
  (
    JSON.parse(result.state['orun-in-flight'] ?? '{"jobs":[]}') as {
      jobs: Array<{ jobId: string; outcome?: { status: string; error?: string } }>
    }
  ).jobs

describe('results are never lost or misreported', () => {
  it.each([
    ['success', 'echo "solo ok"', 'success'],
    ['failed', 'echo "boom here" && exit 3', 'failed']
  ])(
    'a %s job whose final update outlasts the main step is delivered as such by the post step',
    async (_name, run, expected) => {
      const s = scenario(run)
      // The backend answers every final update with an HTML error page: 3 s of budget at this scale.
      const outage = proxy.add({
        method: 'POST',
        path: /\/update$/,
        fault: { kind: 'status', status: 503, body: HTML_ERROR_PAGE }
      })
      const main = await startMain(s, { scale: 0.01 }).done
      expect(outage.hits).toBeGreaterThan(1)
      expect(main.outputs.status).toBe(expected)
      expect(main.exitCode).toBe(expected === 'success' ? 0 : 1)
      expect(main.stdout).toContain(
        `Could not deliver the result of ${s.jobId} (${expected}) to the backend`
      )
      expect(main.stdout).toContain("this action's post step will deliver it")
      expect(savedJobs(main)).toEqual([expect.objectContaining({ jobId: s.jobId })])
      expect(storedJob(s)?.status).toBe('running')

      outage.remove()
      const post = await runPost(s, main, { scale: 0.01 })
      expect(post.exitCode).toBe(0)
      expect(post.stdout).toContain(
        `${s.jobId} finished (${expected}) but its result was not delivered`
      )
      const stored = storedJob(s)!
      expect(stored.status).toBe(expected)
      if (expected === 'success') expect(stored.lastError).toBeNull()
      else expect(stored.lastError).toMatch(/orun exited with code 3[\s\S]*boom here/)
      expect(s.executions()).toHaveLength(1)
    }
  )

  it('keeps the final update trying through a rate-limit storm and 5xx pages (shipped budget)', async () => {
    const s = scenario('echo "solo ok"')
    const limited = proxy.add({
      method: 'POST',
      path: /\/update$/,
      fault: { kind: 'rateLimit' },
      count: 3
    })
    const failing = proxy.add({
      method: 'POST',
      path: /\/update$/,
      fault: { kind: 'status', status: 502, body: HTML_ERROR_PAGE },
      count: 3
    })
    const main = await startMain(s).done
    expect([limited.hits, failing.hits]).toEqual([3, 3])
    expect(main.exitCode).toBe(0)
    expect(main.outputs.status).toBe('success')
    expect(storedJob(s)?.status).toBe('success')
    expect(savedJobs(main)).toEqual([])
  })

  it('claims and runs through a backend outage of 500s, HTML pages, resets, hangs and refused connections', async () => {
    const s = scenario('echo "solo ok"')
    const backend = /^\/(v1\/|$)/
    const rules = [
      proxy.add({ path: backend, fault: { kind: 'status', status: 500 }, count: 2 }),
      proxy.add({
        path: backend,
        fault: { kind: 'status', status: 502, body: HTML_ERROR_PAGE },
        count: 2
      }),
      proxy.add({ path: backend, fault: { kind: 'reset' }, count: 2 }),
      // At this scale a request is given up after 6 s without an answer.
      proxy.add({ path: backend, fault: { kind: 'hang' }, count: 1 })
    ]
    const main = startMain(s, { scale: 0.2 })
    // Rules are spent in order: once the hang has its request, the others are done.
    await until('the outage rules to be spent', () => rules[3].hits === 1)
    await proxy.refuseConnections()
    // The port stays closed for a while: the client sees ECONNREFUSED and backs off.
    await new Promise(resolve => setTimeout(resolve, 3_000))
    await proxy.acceptConnections()
    const result = await main.done
    expect(rules.map(rule => rule.hits)).toEqual([2, 2, 2, 1])
    expect(result.exitCode).toBe(0)
    expect(result.outputs.status).toBe('success')
    expect(storedJob(s)?.status).toBe('success')
    expect(s.executions()).toHaveLength(1)
  })

  it('fails clearly when the backend is really gone, saying how long it tried and what to check', async () => {
    const s = scenario('echo "solo ok"')
    await proxy.refuseConnections()
    const main = await startMain(s, { scale: 0.01 }).done
    const message = expectCleanFailure(main)
    expect(message).toMatch(
      /^Could not reach the backend while .*solo@dev\.smoke.*, after \d+ attempts over [34]s: .*ECONNREFUSED.*Check that the service at 'backend-url'/
    )
    expect(main.outputs.status).toBe('failed')
    expect(s.executions()).toHaveLength(0)
  })

  it('retries a flaky OIDC token endpoint (5xx, 429, reset) and runs the job', async () => {
    const s = scenario('echo "solo ok"')
    const token = /^\/_oidc\/token$/
    const rules = [
      proxy.add({
        path: token,
        fault: { kind: 'status', status: 503, body: HTML_ERROR_PAGE },
        count: 2
      }),
      proxy.add({ path: token, fault: { kind: 'rateLimit' }, count: 1 }),
      proxy.add({ path: token, fault: { kind: 'reset' }, count: 1 })
    ]
    const main = await startMain(s, { tokenViaProxy: true }).done
    expect(rules.map(rule => rule.hits)).toEqual([2, 1, 1])
    expect(main.exitCode).toBe(0)
    expect(storedJob(s)?.status).toBe('success')
  })

  it.each([
    [
      'refuses the request (403)',
      { kind: 'status', status: 403, body: '{"message":"forbidden"}' } as const,
      /HTTP 403.*forks get no OIDC token.*id-token: write/s
    ],
    [
      'keeps failing (503)',
      { kind: 'status', status: 503, body: HTML_ERROR_PAGE } as const,
      /HTTP 503.*attempts over .*on GitHub's side, not a permission problem/s
    ]
  ])('blames permissions only when the token endpoint %s', async (_name, fault, pattern) => {
    const s = scenario('echo "solo ok"')
    const rule = proxy.add({ path: /^\/_oidc\/token$/, fault })
    const main = await startMain(s, { tokenViaProxy: true, scale: 0.01 }).done
    const message = expectCleanFailure(main)
    expect(message).toMatch(pattern)
    if (fault.status === 503) {
      expect(message).not.toContain('id-token: write')
      expect(rule.hits).toBeGreaterThan(1)
    } else {
      expect(rule.hits).toBe(1)
    }
    expect(main.outputs.status).toBe('failed')
  })
})

describe('every wait is bounded', () => {
  it('gives up a log upload that is accepted and never answered, after the result is reported', async () => {
    const s = scenario('echo "solo ok"')
    const hung = proxy.add({ method: 'POST', path: /\/logs\//, fault: { kind: 'hang' } })
    const main = await startMain(s, { scale: 0.05 }).done
    expect(hung.hits).toBeGreaterThan(0)
    expect(main.exitCode).toBe(0)
    expect(main.outputs.status).toBe('success')
    expect(storedJob(s)?.status).toBe('success')
    expect(main.stdout).toContain(
      'Gave up uploading the job log to the backend: it did not finish within 3 s'
    )
  })

  it('a SIGTERM during a hung final log upload (60 s bound) ends the process at once', async () => {
    const s = scenario('echo "solo ok"')
    const hung = proxy.add({ method: 'POST', path: /\/logs\//, fault: { kind: 'hang' } })
    const main = startMain(s)
    await until('the result to be reported', () => storedJob(s)?.status === 'success')
    const hitsAtReport = hung.hits
    await until('the final log upload to hang', () => hung.hits > hitsAtReport)
    const signalled = Date.now()
    main.child.kill('SIGTERM')
    const result = await main.done
    expect(result.endedAt - signalled).toBeLessThan(5_000)
    expect(result.outputs.status).toBe('success')
    expect(result.stdout).toContain(
      'Gave up uploading the job log to the backend: the runner is stopping'
    )
    expect(storedJob(s)?.status).toBe('success')
  })

  it("a step that ignores SIGTERM does not keep a cancelled runner: done within GitHub's budget", async () => {
    const s = scenario('trap "" TERM; echo $$ > PIDFILE; echo "stubborn"; sleep 300')
    const main = startMain(s)
    const pid = await until('the step to start', () => stepPid(s))
    // GitHub's cancel: SIGINT, SIGTERM 7.5 s later, then SIGKILL 2.5 s after.
    const cancelled = Date.now()
    main.child.kill('SIGINT')
    const term = setTimeout(() => main.child.kill('SIGTERM'), 7_500)
    const kill = setTimeout(() => main.child.kill('SIGKILL'), 10_000)
    const result = await main.done
    clearTimeout(term)
    clearTimeout(kill)
    expect(result.exitCode).toBe(1)
    expect(result.endedAt - cancelled).toBeLessThan(7_500)
    expect(result.outputs.status).toBe('failed')
    expect(alive(pid)).toBe(false)
    expect(storedJob(s)).toMatchObject({
      status: 'failed',
      lastError: expect.stringMatching(/cancelled/)
    })
  })

  it('a background child left running in its own process group is stopped when orun ends', async () => {
    // The stand-in starts each step in a session of its own (the real orun: a process group).
    const s = scenario(
      `python3 -c 'import os, time; os.setpgid(0, 0); open("PIDFILE", "w").write(str(os.getpid())); time.sleep(300)' >/dev/null 2>&1 & ` +
        'while [ ! -e PIDFILE.go ]; do sleep 0.1; done; echo "step done"'
    )
    const main = startMain(s)
    const pid = await until('the child to start', () => stepPid(s))
    // The step ends only once the action has seen where the child lives.
    await until('the action to track the step', () => trackedSessions(main) > 1)
    writeFileSync(`${s.pidFile}.go`, '')
    const result = await main.done
    expect(result.exitCode).toBe(0)
    expect(result.outputs.status).toBe('success')
    expect(result.stdout).toContain('orun left 1 process(es) running; they were stopped with it')
    expect(alive(pid)).toBe(false)
    expect(storedJob(s)?.status).toBe('success')
  })

  it('a child in its own process group holding the pipes keeps orun waiting, yet a cancel ends it in budget', async () => {
    // Like Go's exec, orun waits for its step's output pipes to close: the job cannot end by itself.
    const s = scenario(
      'echo $$ > PIDFILE.sh; ' +
        `python3 -c 'import os, time; os.setpgid(0, 0); open("PIDFILE", "w").write(str(os.getpid())); print("child up", flush=True); time.sleep(300)' & ` +
        'while [ ! -e PIDFILE.go ]; do sleep 0.1; done; echo "step done"'
    )
    const main = startMain(s)
    const pid = await until('the child to start', () => stepPid(s))
    await until('the action to track the step', () => trackedSessions(main) > 1)
    const shell = Number(readFileSync(`${s.pidFile}.sh`, 'utf8'))
    writeFileSync(`${s.pidFile}.go`, '')
    await until('the step to end, leaving its child', () => !alive(shell))
    const cancelled = Date.now()
    main.child.kill('SIGINT')
    const result = await main.done
    expect(result.endedAt - cancelled).toBeLessThan(7_500)
    expect(result.outputs.status).toBe('failed')
    expect(alive(pid)).toBe(false)
    expect(storedJob(s)).toMatchObject({
      status: 'failed',
      lastError: expect.stringMatching(/cancelled/)
    })
  })

  it('a child in its own process group that ignores SIGTERM does not hold up a cancel', async () => {
    const s = scenario(
      `python3 -c 'import os, signal, time; os.setpgid(0, 0); signal.signal(signal.SIGTERM, signal.SIG_IGN); open("PIDFILE", "w").write(str(os.getpid())); time.sleep(300)' & ` +
        'sleep 300'
    )
    const main = startMain(s)
    const pid = await until('the child to start', () => stepPid(s))
    const cancelled = Date.now()
    main.child.kill('SIGTERM')
    const result = await main.done
    expect(result.endedAt - cancelled).toBeLessThan(7_500)
    expect(alive(pid)).toBe(false)
    expect(storedJob(s)).toMatchObject({ status: 'failed' })
  })

  it('after a SIGKILL of the action, the post step stops the orun process tree it left and marks the job', async () => {
    const s = scenario('echo $$ > PIDFILE; echo "long"; sleep 300')
    const main = startMain(s)
    const pid = await until('the step to start', () => stepPid(s))
    await until('the action to track the step', () => trackedSessions(main) > 1)
    main.child.kill('SIGKILL')
    const killed = await main.done
    expect(killed.exitCode).toBeNull()
    // orun leads its own session: it outlives the action.
    expect(alive(pid)).toBe(true)
    const post = await runPost(s, killed)
    expect(post.exitCode).toBe(0)
    // orun and the step (how many processes that is depends on orun's process model)
    expect(post.stdout).toMatch(
      new RegExp(
        `${s.jobId}: the main step left \\d+ orun process\\(es\\) running; they were killed\\.`
      )
    )
    expect(alive(pid)).toBe(false)
    expect(storedJob(s)).toMatchObject({
      status: 'failed',
      lastError: expect.stringMatching(/cancelled/)
    })
  })

  it.each([
    [
      'dependency-timeout',
      '600h',
      "between 10s and 24h, got '600h'. Use e.g. 'dependency-timeout: 30m'"
    ],
    [
      'heartbeat-interval',
      '600h',
      "between 1s and 2m, got '600h'. Use e.g. 'heartbeat-interval: 30s'"
    ],
    [
      'log-upload-interval',
      '900ms',
      "between 1s and 1h, got '900ms'. Use e.g. 'log-upload-interval: 15s'"
    ]
  ])('refuses %s: %s before any backend request', async (input, value, expected) => {
    const s = scenario('echo "solo ok"')
    const main = await startMain(s, { inputs: { [input]: value } }).done
    expect(expectCleanFailure(main)).toBe(`Input '${input}' must be ${expected} (the default).`)
    expect(proxy.requests).toEqual([])
  })
})

describe('answers that are not outages', () => {
  it.each([431, 413])(
    'a %s answer to a claim with a very long job id is reported as that, not retried',
    async status => {
      const s = scenario('echo "solo ok"', 'c'.repeat(3000))
      // Like a proxy in front of the service: URLs past its limit are refused.
      const rule = proxy.add({ path: /^.{2000,}$/, fault: { kind: 'status', status, body: '' } })
      const main = await startMain(s).done
      const message = expectCleanFailure(main)
      expect(message).toMatch(
        new RegExp(
          `^The backend refused the request as too large \\(HTTP ${status}.*the job id 'c{40}…' \\(3010 characters\\) is longer than the backend or its proxy accepts.*Retrying would not help\\.$`
        )
      )
      expect(rule.hits).toBe(1)
      expect(s.executions()).toHaveLength(0)
    }
  )

  it('a backend-url that is not orun-backend (404 Not found on /v1/runs) is a one-line user error', async () => {
    const s = scenario('echo "solo ok"')
    proxy.add({
      fault: { kind: 'status', status: 404, body: 'Not found', contentType: 'text/plain' }
    })
    const main = await startMain(s).done
    const message = expectCleanFailure(main)
    expect(message).toMatch(
      /^The backend URL does not look like orun-backend: POST \/v1\/runs answered 404 .*Not found.*Check 'backend-url'/
    )
    expect(message).not.toContain('\n')
    expect(main.stdout).not.toContain('This is a bug')
  })
})
