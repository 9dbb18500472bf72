/**
 * The whole workflow on one machine, with the bundled actions as processes:
 * the demo harness with assertions.
 */
import { afterEach, describe, expect, it, jest } from '@jest/globals'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEMO_SECRET, Harness, ROOT, checkExecutions, type RunnerHandle } from '../demo/harness.js'
import { statusStep } from '../demo/status-step.js'
import { BACKEND_BUILDS, type BackendBuild } from '../testing/coordination-server.js'

const intent = join(ROOT, 'demo', 'intent')
let harness: Harness | undefined

// A guard against a hang, not a bound: these scenarios take 5-35 s alone and 2-3 times that on a
// loaded machine (one took 61 s at load average 15); their bounds on time are in the tests.
jest.setTimeout(180_000)

// The stand-in orun as release 2.54 or 2.75 (deterministic plans, job index, the new output). The
// main run goes through both on each backend build; the other scenarios pair 2.54 with the older
// build and 2.75 with the newer one, so every version and build stays covered at half the cost.
const V254 = '2.54.0'
const V275 = '2.75.0'
const orunAt = (version: string) => ({ ORUN_STANDIN_VERSION: version })
const pairedVersion = (build: BackendBuild) => (build === '2026-05-08' ? V275 : V254)

afterEach(async () => {
  await harness?.close()
  harness = undefined
})

async function planned(h: Harness, intentDir: string) {
  const plan = await h.plan(intentDir, { 'backend-url': h.server.url })
  expect(plan.exitCode).toBe(0)
  const planFile = plan.outputs['plan-file']
  return {
    planLog: plan.stdout,
    runId: plan.outputs['run-id'],
    common: {
      'run-id': plan.outputs['run-id'],
      'plan-id': plan.outputs['plan-id'],
      'plan-file': planFile,
      'heartbeat-interval': '1s',
      'log-upload-interval': '1s',
      'redact-env': 'DEMO_SECRET'
    },
    jobs: (JSON.parse(plan.outputs.jobs) as Array<{ job: string }>).map(j => j.job),
    plan: JSON.parse(readFileSync(planFile, 'utf8')) as { apiVersion: string },
    planJobs: (
      JSON.parse(readFileSync(planFile, 'utf8')) as {
        jobs: Array<{
          id: string
          index?: number
          component: string
          environment: string
          dependsOn?: string[]
        }>
      }
    ).jobs
  }
}

/** A two-job intent whose foundation runs long enough to be interrupted. */
function slowIntent(seconds: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'orun-slow-intent-'))
  writeFileSync(
    join(dir, 'intent.yaml'),
    [
      'name: slow',
      'environments: [dev]',
      'components:',
      '  - name: foundation',
      '    composition: terraform',
      `    run: 'echo "foundation start" && sleep ${seconds} && echo "foundation done"'`,
      '  - name: api',
      '    composition: helm',
      '    dependsOn: [foundation]',
      `    run: 'echo "api ran"'`
    ].join('\n')
  )
  return dir
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** Plans the slow intent and starts the runner of its foundation job; resolves once that job runs. */
async function slowFoundationRunning(h: Harness, seconds: number) {
  const slow = slowIntent(seconds)
  const { runId, common } = await planned(h, slow)
  const foundation = h.startRunner('foundation', slow, { ...common, job: 'foundation.dev.smoke' })
  await until('foundation to run', () =>
    h.server.jobsOf(runId).find(j => j.jobId === 'foundation.dev.smoke' && j.status === 'running')
  )
  return { slow, runId, common, foundation }
}

// The main scenarios on each build of orun-backend (a deployment does not say which it runs).
describe.each(BACKEND_BUILDS)(
  'the workflow end to end, backend build %s',
  (build: BackendBuild) => {
    it.each([V254, V275])(
      'orun %s: runs every job exactly once, in DAG order, with duplicates and a fan-out pair, and streams redacted logs',
      async version => {
        harness = await new Harness({ server: { build }, env: orunAt(version) }).start()
        const { runId, common, jobs, planJobs, plan, planLog } = await planned(harness, intent)
        // Today's orun shape: orun.io/v1, comp.env.job ids; from 2.71 a job index, which the matrix carries.
        expect(plan.apiVersion).toBe('orun.io/v1')
        expect(planJobs.map(job => job.index)).toEqual(
          version === V275 ? planJobs.map((_, index) => index) : planJobs.map(() => undefined)
        )
        const runners: RunnerHandle[] = [
          ...jobs.map(job => harness!.startRunner(job, intent, { ...common, job })),
          harness.startRunner('dup', intent, { ...common, job: 'api.dev.smoke' }),
          harness.startRunner('fan-dev', intent, { ...common, environments: 'dev' }),
          harness.startRunner('fan-stage', intent, { ...common, environments: 'stage' })
        ]
        const results = await Promise.all(runners.map(r => r.done))
        // The plan step learns the limit once; every runner starts on that pace.
        const pace = build === '2026-05-02' ? 5 : 30
        expect(planLog).toMatch(
          build === '2026-05-02'
            ? /Rate limit: a 429 after \d+ of \d+ reads stated a bucket of 20; the runners start on the 5\/s pace/
            : /Rate limit: 60 reads answered without a 429, .* the runners start on the 30\/s pace/
        )
        for (const { main } of results)
          expect(main.stdout).toContain(`pacing for ${pace}/s until a 429 says otherwise`)

        expect(checkExecutions({ jobs: planJobs }, harness.executions())).toEqual([])
        for (const { main } of results) {
          expect(main.exitCode).toBe(0)
          expect(['success', 'already-complete']).toContain(main.outputs.status)
        }
        const stored = harness.server.jobsOf(runId)
        expect(stored.map(j => j.status)).toEqual(planJobs.map(() => 'success'))
        for (const job of planJobs) {
          const log = await harness.fetchLog(runId, job.id)
          expect(log).toContain(`${job.component} ${job.environment} done`)
          expect(log).not.toContain(DEMO_SECRET)
          expect(log).not.toMatch(/eyJ[\w-]+\.[\w-]+\./) // no JWT
        }
        expect(await harness.fetchLog(runId, 'api.dev.smoke')).toContain('using token ***')
        // The duplicate entry mirrored the owner instead of running the job again.
        const dup = results[jobs.length]
        expect(JSON.parse(dup.main.outputs['job-results'])['api.dev.smoke'].tookOver).toBe(false)
      }
    )

    it(`orun ${pairedVersion(build)}: blocks the dependents of a failed job quickly, naming the failed upstream`, async () => {
      harness = await new Harness({ server: { build }, env: orunAt(pairedVersion(build)) }).start()
      const failing = join(intent, 'failing')
      const { runId, common, jobs } = await planned(harness, failing)
      const runners = jobs.map(job => harness!.startRunner(job, failing, { ...common, job }))
      const [foundation, api, web] = await Promise.all(runners.map(r => r.done))
      const failedAt = Date.parse(
        harness.server.jobsOf(runId).find(j => j.jobId === 'foundation.dev.smoke')!.finishedAt!
      )

      expect(foundation.main.outputs.status).toBe('failed')
      expect(foundation.main.stdout).toMatch(
        /::error::foundation\.dev\.smoke: failed: orun exited with code 3/
      )
      for (const blocked of [api, web]) {
        expect(blocked.main.exitCode).toBe(1)
        expect(blocked.main.outputs.status).toBe('blocked')
        expect(blocked.main.stdout).toContain('upstream failed: foundation.dev.smoke')
      }
      expect(harness.executions().map(e => e.job)).toEqual(['foundation.dev.smoke'])
      // "Quickly": a direct dependent within a few polls, a transitive one at its first look at the run.
      expect(api.main.endedAt - failedAt).toBeLessThan(10_000)
      expect(web.main.endedAt - failedAt).toBeLessThan(20_000)
    })
  }
)

describe('the workflow end to end: repeating plan ids', () => {
  it('orun 2.75: the plan id repeats, yet two workflow runs and a re-run of all jobs never share a backend run, and the status action reads each one', async () => {
    harness = await new Harness({ env: orunAt(V275) }).start()
    const single = slowIntent(0)
    const runJob = async () => {
      const { runId, common } = await planned(harness!, single)
      const runner = harness!.startRunner('foundation', single, {
        ...common,
        job: 'foundation.dev.smoke'
      })
      const { main } = await runner.done
      // The status action reads this workflow run's run back, not another's with the same plan.
      const status = await statusStep(
        harness!,
        { 'run-id': runId, 'plan-id': common['plan-id'], 'plan-file': common['plan-file'] },
        true
      )
      return {
        runId,
        planId: common['plan-id'],
        status: main.outputs.status,
        // Only this one job of the plan ran: one success, the rest not run.
        read: {
          runId: status.outputs['run-id'],
          success: (JSON.parse(status.outputs.counts) as { success: number }).success
        }
      }
    }
    const first = await runJob() // workflow run 4242, attempt 1
    harness.workflowRun = '4243' // the same commit, another workflow run (or another workflow)
    const second = await runJob()
    harness.attempt = 2 // "Re-run all jobs" of that workflow run
    const rerun = await runJob()

    // One plan id: byte-identical plans. Three run ids, and the job ran in each: none was
    // mistaken for another's already-complete run.
    expect(new Set([first.planId, second.planId, rerun.planId]).size).toBe(1)
    expect([first.runId, second.runId, rerun.runId]).toEqual([
      `gha-4242-1-${first.planId}`,
      `gha-4243-1-${first.planId}`,
      `gha-4243-2-${first.planId}`
    ])
    expect([first.status, second.status, rerun.status]).toEqual(['success', 'success', 'success'])
    for (const { runId, read } of [first, second, rerun])
      expect(read).toEqual({ runId, success: 1 })
    expect(harness.executions().filter(e => e.exitCode === 0)).toHaveLength(3)
    for (const runId of [first.runId, second.runId, rerun.runId]) {
      const job = harness.server.jobsOf(runId).find(j => j.jobId === 'foundation.dev.smoke')!
      expect({ runId, status: job.status }).toEqual({ runId, status: 'success' })
    }
  })
})

describe('the workflow end to end: runners that stop', () => {
  it('marks a cancelled (SIGTERM) job failed at once, so its dependents fail within seconds', async () => {
    harness = await new Harness().start()
    const { slow, runId, common, foundation } = await slowFoundationRunning(harness, 60)
    const api = harness.startRunner('api', slow, { ...common, job: 'api.dev.smoke' })
    // Cancel once orun has printed its job header (a claimed job's orun may not have started yet
    // on a busy machine), and once the dependent waits.
    await until('orun to print its job header', () =>
      /job-id {6}foundation\.dev\.smoke/.test(foundation.output()) ? true : undefined
    )
    await until('the dependent to claim', () =>
      harness!.server.requests.find(
        r => r.route === 'claim' && r.path.includes(encodeURIComponent('api.dev.smoke'))
      )
    )
    const cancelledAt = Date.now()
    foundation.child.kill('SIGTERM')
    const [f, a] = await Promise.all([foundation.done, api.done])

    const record = harness.server.jobsOf(runId).find(j => j.jobId === 'foundation.dev.smoke')!
    expect(record.status).toBe('failed')
    expect(record.lastError).toMatch(/cancelled/)
    expect(f.main.exitCode).toBe(1)
    expect(a.main.outputs.status).toBe('blocked')
    expect(Date.now() - cancelledAt).toBeLessThan(15_000)
    // orun (GitHub Actions mode) prints a step's output when the step ends, so a cancelled
    // step's output never comes; what orun printed before it (its job header) is stored.
    expect(await harness.fetchLog(runId, 'foundation.dev.smoke')).toMatch(
      /job-id {6}foundation\.dev\.smoke/
    )
  })

  it('orun 2.75: finishes a job whose main step died without reporting, from the post step', async () => {
    harness = await new Harness({ env: orunAt(V275) }).start()
    const { runId, foundation } = await slowFoundationRunning(harness, 60)
    // The main step crashes hard (no signal handler runs); GitHub still runs the post step.
    foundation.child.kill('SIGKILL')
    const { post } = await foundation.done
    expect(post.exitCode).toBe(0)
    expect(post.stdout).toContain('marking it failed (cancelled)')
    expect(harness.server.jobsOf(runId).find(j => j.jobId === 'foundation.dev.smoke')!.status).toBe(
      'failed'
    )
  })

  // 2026-05-02: a duplicate's claim takes the job over. (On 2026-05-08 the sweep may fail it
  // first: see the next test.)
  it('takes over the job of a lost runner (SIGKILL) once its heartbeat expires', async () => {
    harness = await new Harness({ server: { heartbeatTimeoutMs: 3_000 } }).start()
    const { slow, runId, common, foundation: first } = await slowFoundationRunning(harness, 3)
    const second = harness.startRunner('second', slow, { ...common, job: 'foundation.dev.smoke' })
    const api = harness.startRunner('api', slow, { ...common, job: 'api.dev.smoke' })
    await new Promise(resolve => setTimeout(resolve, 1_000))
    harness.loseRunner(first)
    const [s, a] = await Promise.all([second.done, api.done])

    expect(s.main.exitCode).toBe(0)
    expect(JSON.parse(s.main.outputs['job-results'])['foundation.dev.smoke'].tookOver).toBe(true)
    expect(s.main.stdout).toContain('took the job over')
    const record = harness.server.jobsOf(runId).find(j => j.jobId === 'foundation.dev.smoke')!
    expect(record.status).toBe('success')
    expect(harness.labelOf(record.runnerId)).toMatch(/^second#/)
    expect(a.main.outputs.status).toBe('success')
    // The lost runner's orun never finished; the new owner's did, then api.
    expect(
      harness
        .executions()
        .filter(e => e.exitCode === 0)
        .map(e => e.job)
    ).toEqual(['foundation.dev.smoke', 'api.dev.smoke'])
  })

  it('orun 2.75: stops a job whose lease was taken over while it ran, and sends no result for it', async () => {
    harness = await new Harness({
      server: { heartbeatTimeoutMs: 3_000 },
      env: orunAt(V275)
    }).start()
    // 20 s: the takeover must come while the first runner's job still runs; with 8 s, a busy
    // machine (a benchmark beside the suite) started the second runner too late, and the first
    // finished its job first. The first is stopped at the takeover, so only the second waits.
    const { slow, runId, common, foundation: first } = await slowFoundationRunning(harness, 20)
    // The first runner's next heartbeat hangs for 5 s (a network stall), so its lease expires;
    // a duplicate entry takes the job over; the first learns it when that heartbeat lands.
    harness.server.inject('heartbeat', { kind: 'delay', ms: 5_000, count: 1 })
    const second = harness.startRunner('second', slow, { ...common, job: 'foundation.dev.smoke' })
    const [f, s] = await Promise.all([first.done, second.done])

    expect(f.main.exitCode).toBe(1)
    expect(f.main.stdout).toContain('no longer owns foundation.dev.smoke')
    expect(f.main.stdout).toMatch(/taken over by another runner/)
    expect(JSON.parse(s.main.outputs['job-results'])['foundation.dev.smoke'].tookOver).toBe(true)
    const record = harness.server.jobsOf(runId).find(j => j.jobId === 'foundation.dev.smoke')!
    expect(record.status).toBe('success')
    expect(harness.labelOf(record.runnerId)).toMatch(/^second#/)
    // The first orun was stopped (SIGTERM: 143); only the new owner's run finished.
    expect(
      harness
        .executions()
        .map(e => e.exitCode)
        .sort()
    ).toEqual([0, 143])
    // The lost owner sent no update: the only update came from the new owner.
    const updates = harness.server.requests.filter(r => r.route === 'update')
    expect(updates.map(r => harness!.labelOf(r.runnerId ?? null))).toEqual([
      expect.stringMatching(/^second#/)
    ])
  })

  it('2026-05-08: a lost runner (SIGKILL) is named as lost by its dependents, job-results and the status view', async () => {
    harness = await new Harness({
      server: { build: '2026-05-08', heartbeatTimeoutMs: 3_000, sweepPeriodMs: 1_000 }
    }).start()
    const { slow, runId, common, foundation } = await slowFoundationRunning(harness, 60)
    const api = harness.startRunner('api', slow, { ...common, job: 'api.dev.smoke' })
    harness.loseRunner(foundation)
    const a = await api.done

    // The sweep failed the silent runner's job: nobody took it over, nothing ran it twice.
    const record = harness.server.jobsOf(runId).find(j => j.jobId === 'foundation.dev.smoke')!
    expect(record).toMatchObject({
      status: 'failed',
      lastError: 'runner heartbeat timeout',
      claims: 1
    })
    const lostRunner = record.runnerId!
    expect(harness.labelOf(lostRunner)).toMatch(/^foundation#/)
    expect(a.main.exitCode).toBe(1)
    expect(a.main.outputs.status).toBe('blocked')
    const results = JSON.parse(a.main.outputs['job-results'])
    expect(results['api.dev.smoke']).toMatchObject({
      status: 'blocked',
      detail: `upstream runner lost: foundation.dev.smoke (runner ${lostRunner} stopped heartbeating mid-job)`,
      runnerLost: [{ jobId: 'foundation.dev.smoke', runnerId: lostRunner }]
    })
    expect(a.main.stdout).toContain(
      `::error::api.dev.smoke: blocked: upstream runner lost: foundation.dev.smoke (runner ${lostRunner}`
    )
    expect(a.main.stdout).toContain('Re-run failed jobs')
    expect(a.main.stdout).not.toMatch(/upstream failed/)
    expect(harness.executions().filter(e => e.job === 'api.dev.smoke')).toEqual([])

    const status = await statusStep(
      harness,
      { 'run-id': runId, 'plan-id': common['plan-id'], 'plan-file': common['plan-file'] },
      true
    )
    expect(status.exitCode).toBe(1)
    expect(status.stdout).toMatch(
      new RegExp(
        `::error title=[^:\\n]*%3A runner lost::foundation\\.dev\\.smoke: runner lost: runner ${lostRunner} \\(http[^)]+\\) stopped heartbeating mid-job`
      )
    )
    expect(status.summary).toMatch(
      /<summary>✗ [^<]*\(foundation\.dev\.smoke\): runner lost<\/summary>/
    )
    expect(status.summary).toMatch(/\[its GitHub job\]\(http/)
    expect(status.summary).not.toContain('Error reported to the backend')
  })
})
