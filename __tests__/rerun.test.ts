/**
 * Re-runs through the bundled actions against the local server: GitHub's
 * "Re-run failed jobs" starts only the failed legs, with the plan job's
 * outputs of the attempt it last ran in; "Re-run job" starts one leg;
 * "Re-run all jobs" runs the plan job again.
 */
import {
  BACKEND_BUILDS,
  DEFAULT_BACKEND_BUILD,
  type BackendBuild
} from '../testing/coordination-server.js'
import { afterEach, describe, expect, it, jest } from '@jest/globals'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Harness } from '../demo/harness.js'
import type { RecordedRequest } from '../testing/coordination-server.js'
import {
  RERUN_SHAPE,
  planRun,
  runAttempt,
  writeFlakyIntent,
  type AttemptOutcome,
  type IntentShape,
  type PlannedRun
} from '../demo/rerun-scenario.js'
import { toBackendPlan } from '../src/backend/plan.js'
import { customRunId, parseRunId } from '../src/common/attempt.js'

jest.setTimeout(240_000)

let harness: Harness | undefined
afterEach(async () => {
  await harness?.close()
  harness = undefined
})

const root = () => mkdtempSync(join(tmpdir(), 'orun-rerun-'))
/** The plan of the test that runs: its job ids by `<component>@<env>`. */
let current: PlannedRun
const id = (pair: string) => current.idOf(pair)
const ids = (pairs: string[]) => pairs.map(id).sort()

/** Which attempt-2+ jobs ran (orun executions after `from`), by job id, with their exit codes. */
function executedSince(h: Harness, from: number): Map<string, number[]> {
  const ran = new Map<string, number[]>()
  for (const e of h.executions().slice(from))
    ran.set(e.job, [...(ran.get(e.job) ?? []), e.exitCode])
  return ran
}

function jobResults(outcome: AttemptOutcome) {
  return outcome.runners.map(
    r =>
      JSON.parse(r.main.outputs['job-results'] ?? '{}') as Record<
        string,
        { status: string; carriedFrom?: number }
      >
  )
}

/** Jobs each runner reported as carried over by itself, with the attempt they came from. */
function carriedBy(outcome: AttemptOutcome): Array<[string, number | undefined]> {
  return jobResults(outcome)
    .flatMap(results => Object.entries(results))
    .filter(([, r]) => r.status === 'carried')
    .map(([job, r]) => [job, r.carriedFrom] as [string, number | undefined])
    .sort(([a], [b]) => a.localeCompare(b))
}

/**
 * No 429 storm: the crowd of re-run runners was refused at most a quarter of its requests,
 * never more than 5 in a row at the server, and each runner's summary counts its requests and
 * refusals. Unpaced, every runner reading and carrying at once, the same re-run drew over a
 * quarter of its requests refused, six in a row. (A bound per runner proved noisy on a busy
 * machine: a runner that sends 19 requests while the carrier's pace shifts can draw 6.)
 */
function expectNo429Storm(requests: RecordedRequest[], outcome: AttemptOutcome) {
  let streak = 0
  let longest = 0
  for (const r of requests) {
    streak = r.status === 429 ? streak + 1 : 0
    longest = Math.max(longest, streak)
  }
  expect(longest).toBeLessThanOrEqual(5)
  expect(requests.filter(r => r.status === 429).length).toBeLessThanOrEqual(requests.length / 4)
  for (const runner of outcome.runners)
    expect(runner.main.summary).toMatch(/: \d+ backend requests, \d+ rate-limited\./)
}

async function attemptOne(
  shape: IntentShape,
  broken: string[],
  inputs = {},
  build: BackendBuild = DEFAULT_BACKEND_BUILD
) {
  const dir = root()
  harness = await new Harness({ server: { build } }).start()
  const intent = writeFlakyIntent(join(dir, 'attempt-1'), shape, broken)
  const planned = await planRun(harness, intent, inputs)
  current = planned
  const first = await runAttempt(harness, planned, intent, planned.jobs)
  return { dir, planned, first }
}

function expectAllSuccess(h: Harness, runId: string, jobs: string[]) {
  const stored = h.server.jobsOf(runId)
  expect(stored.map(j => j.jobId).sort()).toEqual([...jobs].sort())
  expect(stored.filter(j => j.status !== 'success')).toEqual([])
  // Exactly once in this attempt's run: every job claimed once, carried or executed.
  expect(stored.filter(j => j.claims !== 1)).toEqual([])
}

/** A 20-job plan: net -> db -> api -> web and an independent docs, in four environments. */
const WIDE: IntentShape = {
  name: 'rerun-wide',
  environments: ['dev', 'stage', 'prod', 'qa'],
  components: [
    { name: 'net' },
    { name: 'db', dependsOn: ['net'] },
    { name: 'api', dependsOn: ['db'] },
    { name: 'web', dependsOn: ['api'] },
    { name: 'docs' }
  ]
}
const WIDE_BROKEN = ['db@dev', 'db@stage', 'docs@dev', 'docs@stage']
const wideFailed = () =>
  ids([
    'db@dev',
    'api@dev',
    'web@dev',
    'db@stage',
    'api@stage',
    'web@stage',
    'docs@dev',
    'docs@stage'
  ])

/** Attempt 2 of the wide plan: the 8 failed legs plus 2 duplicate matrix entries, all at once. */
async function wideRerun(h: Harness, planned: PlannedRun, dir: string, failedLegs: string[]) {
  h.attempt = 2
  const fixed = writeFlakyIntent(join(dir, 'attempt-2'), WIDE)
  const executedBefore = h.executions().length
  const requestsBefore = h.server.requests.length
  const second = await runAttempt(h, planned, fixed, [...failedLegs, id('db@dev'), id('web@stage')])
  const requests = h.server.requests
    .slice(requestsBefore)
    .filter(r => r.route !== 'token' && r.route !== 'jwks')
  return { second, executed: executedSince(h, executedBefore), requests }
}

describe('run ids per attempt', () => {
  it('reads the attempt of a plan-action id and names the same run in another attempt', () => {
    const id = parseRunId('gha-4242-1-0b673779a274')
    expect(id.attempt).toBe(1)
    expect(id.forAttempt(3)).toBe('gha-4242-3-0b673779a274')
    expect(parseRunId('gha-4242-2-0b673779a274').attempt).toBe(2)
  })

  it('gives a custom id a suffix from attempt 2 on, and reads it back', () => {
    expect(customRunId('deploy-4242', 1)).toBe('deploy-4242')
    expect(customRunId('deploy-4242', 2)).toBe('deploy-4242-a2')
    expect(parseRunId('deploy-4242').attempt).toBe(1)
    const second = parseRunId('deploy-4242-a2')
    expect(second.attempt).toBe(2)
    expect(second.forAttempt(1)).toBe('deploy-4242')
    expect(second.forAttempt(3)).toBe('deploy-4242-a3')
    // Not a plan-action id (no 12-hex plan id): a custom id like any other.
    expect(parseRunId('gha-1-2-xyz').forAttempt(2)).toBe('gha-1-2-xyz-a2')
  })
})

describe('re-running a workflow run', () => {
  // On each build; on 2026-05-08 the earlier run went idle first, so it is read from the copy.
  it.each(BACKEND_BUILDS)(
    '"Re-run failed jobs": only the failed and blocked legs start; earlier successes are carried, the fixed job runs, then its dependents (backend build %s)',
    async (build: BackendBuild) => {
      const { dir, planned, first } = await attemptOne(RERUN_SHAPE, ['api@dev'], {}, build)
      expect(first.failedLegs.sort()).toEqual(ids(['api@dev', 'web@dev']))
      const firstExecutions = harness!.executions().length
      if (build === '2026-05-08') {
        expect(harness!.server.dropLiveState(planned.runId)).toBe(true)
      }

      harness!.attempt = 2
      const fixed = writeFlakyIntent(join(dir, 'attempt-2'), RERUN_SHAPE)
      const requestsBefore = harness!.server.requests.length
      const second = await runAttempt(harness!, planned, fixed, first.failedLegs)

      const runId2 = `gha-4242-2-${planned.planId}`
      for (const runner of second.runners) {
        expect(runner.main.exitCode).toBe(0)
        expect(runner.main.outputs['run-id']).toBe(runId2)
        expect(runner.main.outputs.status).toBe('success')
      }
      expectAllSuccess(harness!, runId2, planned.jobs)
      // The attempt-1 run keeps its history.
      expect(
        harness!.server.jobsOf(planned.runId).find(j => j.jobId === id('api@dev'))!.status
      ).toBe('failed')

      // Earlier successes executed exactly once overall; the fixed job and its dependent ran in attempt 2.
      const executed = executedSince(harness!, firstExecutions)
      expect([...executed.keys()].sort()).toEqual(ids(['api@dev', 'web@dev']))
      expect([...executed.values()]).toEqual([[0], [0]])
      const all = harness!.executions()
      for (const job of planned.jobs.filter(j => !first.failedLegs.includes(j)))
        expect(all.filter(e => e.job === job)).toHaveLength(1)
      const api = all.filter(e => e.job === id('api@dev')).at(-1)!
      const web = all.find(e => e.job === id('web@dev'))!
      expect(web.start).toBeGreaterThanOrEqual(api.end)

      // Carried jobs say where they ran; each was carried by exactly one runner, from attempt 1.
      const stored = harness!.server.jobsOf(runId2)
      const carried = stored.filter(j => !first.failedLegs.includes(j.jobId))
      for (const job of carried)
        expect(job.lastError).toMatch(
          new RegExp(
            `^carried over from attempt 1 \\(runner ${job.jobId.replace(/\./g, '\\.')}#\\d+-1-`
          )
        )
      expect(carriedBy(second)).toEqual(carried.map(j => [j.jobId, 1]).sort())
      const summary = second.runners.map(r => r.main.summary).join('\n')
      expect(summary).toContain(`| \`${id('docs@dev')}\` | carried (from attempt 1) |`)

      // What carrying cost: one claim and one update per carried job, nothing more.
      const requests = harness!.server.requests.slice(requestsBefore)
      const carriedPaths = (route: string) =>
        requests.filter(
          r => r.route === route && carried.some(j => r.path.includes(encodeURIComponent(j.jobId)))
        ).length
      expect(carriedPaths('claim')).toBe(carried.length)
      expect(carriedPaths('update')).toBe(carried.length)
      expect(harness!.server.runPhase(planned.runId)).toBe(build === '2026-05-08' ? 'copy' : 'live')
    }
  )

  it('stays exactly-once when 10 re-run runners start at once over a 20-job plan with 12 earlier successes, without a 429 storm', async () => {
    const { dir, planned, first } = await attemptOne(WIDE, WIDE_BROKEN)
    expect(first.failedLegs.sort()).toEqual(wideFailed())
    const { second, executed, requests } = await wideRerun(harness!, planned, dir, first.failedLegs)

    for (const runner of second.runners) expect(runner.main.exitCode).toBe(0)
    const runId2 = `gha-4242-2-${planned.planId}`
    expectAllSuccess(harness!, runId2, planned.jobs)
    expect([...executed.keys()].sort()).toEqual(wideFailed())
    expect([...executed.values()].every(codes => codes.length === 1 && codes[0] === 0)).toBe(true)
    const successes = planned.jobs.filter(j => !wideFailed().includes(j)).sort()
    expect(carriedBy(second).map(([job]) => job)).toEqual(successes)
    expectNo429Storm(requests, second)
  })

  it('carries over when nobody is first (the first runner vanished after making the run): the waiting runners take it over, still exactly once', async () => {
    const { dir, planned, first } = await attemptOne(WIDE, WIDE_BROKEN)
    // The run of attempt 2 exists already, as if its maker died at once: every runner joins.
    const runId2 = `gha-4242-2-${planned.planId}`
    const planFile = JSON.parse(readFileSync(planned.common['plan-file'], 'utf8'))
    const token = await harness!.server.mintToken()
    const create = () =>
      fetch(`${harness!.server.url}/v1/runs`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ runId: runId2, plan: toBackendPlan(planFile, planned.planId) })
      })
    // Attempt 1's runners may have just spent the burst: this maker waits out Retry-After too.
    let created = await create()
    for (let tries = 1; created.status === 429 && tries < 10; tries++) {
      await new Promise(resolve => setTimeout(resolve, 1_000))
      created = await create()
    }
    expect(created.status).toBe(201)

    const { second, executed, requests } = await wideRerun(harness!, planned, dir, first.failedLegs)
    for (const runner of second.runners) expect(runner.main.exitCode).toBe(0)
    expectAllSuccess(harness!, runId2, planned.jobs)
    expect([...executed.keys()].sort()).toEqual(wideFailed())
    const successes = planned.jobs.filter(j => !wideFailed().includes(j)).sort()
    expect(carriedBy(second).map(([job]) => job)).toEqual(successes)
    expect(second.runners.map(r => r.main.stdout).join('\n')).toContain(
      'Nobody is carrying the earlier successes over'
    )
    // The fallback is about safety, not thrift: every runner resumes after about the same
    // hold-off while one of them carries, so refusals come bunched (measured on a loaded
    // machine: 8 in a row at the server, up to 8 of one runner's 17 requests). Every runner
    // still finished (exit 0 above): the client rode them out.
    expect(requests.filter(r => r.status === 429).length).toBeLessThan(requests.length / 2)
  })

  const CHAIN: IntentShape = {
    name: 'rerun-chain',
    environments: ['dev'],
    components: [
      { name: 'foundation' },
      { name: 'api', dependsOn: ['foundation'] },
      { name: 'web', dependsOn: ['api'] },
      { name: 'docs' }
    ]
  }

  it('attempt 3 carries from attempt 2, which carried from attempt 1', async () => {
    const { dir, planned, first } = await attemptOne(CHAIN, ['api@dev'])
    expect(first.failedLegs.sort()).toEqual(ids(['api@dev', 'web@dev']))
    harness!.attempt = 2
    const second = await runAttempt(
      harness!,
      planned,
      writeFlakyIntent(join(dir, 'attempt-2'), CHAIN, ['web@dev']),
      first.failedLegs
    )
    expect(second.failedLegs).toEqual([id('web@dev')])
    const before = harness!.executions().length

    harness!.attempt = 3
    const third = await runAttempt(
      harness!,
      planned,
      writeFlakyIntent(join(dir, 'attempt-3'), CHAIN),
      second.failedLegs
    )
    expect(third.runners[0].main.exitCode).toBe(0)
    const runId3 = `gha-4242-3-${planned.planId}`
    expect(third.runners[0].main.outputs['run-id']).toBe(runId3)
    expectAllSuccess(harness!, runId3, planned.jobs)
    expect([...executedSince(harness!, before).keys()]).toEqual([id('web@dev')])
    // Each carried job names the attempt in which it actually ran.
    expect(carriedBy(third)).toEqual([
      [id('api@dev'), 2],
      [id('docs@dev'), 1],
      [id('foundation@dev'), 1]
    ])
  })

  it('fails at once, saying to use "Re-run all jobs", when the earlier run and its results record are gone', async () => {
    const { dir, planned, first } = await attemptOne(CHAIN, ['api@dev'])
    expect(harness!.server.deleteRun(planned.runId)).toBe(true)
    // The record's artifacts expired or were deleted too.
    const records = harness!.artifacts!.artifacts('4242')
    expect(records.length).toBeGreaterThan(0)
    for (const record of records) harness!.artifacts!.deleteArtifact('4242', record.name)
    harness!.attempt = 2
    const started = Date.now()
    const second = await runAttempt(
      harness!,
      planned,
      writeFlakyIntent(join(dir, 'attempt-2'), CHAIN),
      first.failedLegs
    )
    for (const runner of second.runners) {
      expect(runner.main.exitCode).toBe(1)
      const errors = runner.main.stdout.split('\n').filter(line => line.startsWith('::error::'))
      expect(errors).toEqual([
        expect.stringMatching(
          /^::error::The run of the earlier attempt \(gha-4242-1-\w+\) is gone from the backend .*no results record of it is left in this workflow run \(its 'orun-results_\*' artifacts were deleted or expired\), so nothing can be carried over: use "Re-run all jobs"\.$/
        )
      ])
    }
    // Within seconds (a startup spread of up to 3 s, one backend read, one artifact list).
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(harness!.server.jobsOf(`gha-4242-2-${planned.planId}`)).toEqual([])
  })

  it('with a custom run id: attempt 2 works in <id>-a2; "Re-run all jobs" makes the plan job name a fresh run', async () => {
    const { dir, planned, first } = await attemptOne(CHAIN, ['api@dev'], {
      'run-id': 'deploy-4242'
    })
    expect(planned.runId).toBe('deploy-4242')
    harness!.attempt = 2
    const second = await runAttempt(
      harness!,
      planned,
      writeFlakyIntent(join(dir, 'attempt-2'), CHAIN),
      first.failedLegs
    )
    for (const runner of second.runners) {
      expect(runner.main.exitCode).toBe(0)
      expect(runner.main.outputs['run-id']).toBe('deploy-4242-a2')
    }
    expectAllSuccess(harness!, 'deploy-4242-a2', planned.jobs)
    expect(carriedBy(second).map(([job]) => job)).toEqual(ids(['docs@dev', 'foundation@dev']))

    // "Re-run all jobs" in attempt 3: the plan job runs again and names attempt 3's run: nothing is carried.
    harness!.attempt = 3
    const rerunAll = await planRun(harness!, writeFlakyIntent(join(dir, 'attempt-3'), CHAIN), {
      'run-id': 'deploy-4242'
    })
    expect(rerunAll.runId).toBe('deploy-4242-a3')
    const before = harness!.executions().length
    const third = await runAttempt(
      harness!,
      rerunAll,
      writeFlakyIntent(join(dir, 'attempt-3'), CHAIN),
      rerunAll.jobs
    )
    expect(third.failedLegs).toEqual([])
    expect(carriedBy(third)).toEqual([])
    expect([...executedSince(harness!, before).keys()].sort()).toEqual([...planned.jobs].sort())
  })

  it('"Re-run job" on a job that succeeded runs it again and carries the rest, its dependents after it', async () => {
    const { dir, planned, first } = await attemptOne(CHAIN, [])
    expect(first.failedLegs).toEqual([])
    harness!.attempt = 2
    const before = harness!.executions().length
    const second = await runAttempt(
      harness!,
      planned,
      writeFlakyIntent(join(dir, 'attempt-2'), CHAIN),
      [id('api@dev')]
    )
    const runner = second.runners[0].main
    expect(runner.exitCode).toBe(0)
    expect(runner.stdout).toContain(
      'this runner was started for it again ("Re-run job"): it runs again'
    )
    const runId2 = `gha-4242-2-${planned.planId}`
    expectAllSuccess(harness!, runId2, planned.jobs)
    expect([...executedSince(harness!, before).keys()]).toEqual([id('api@dev')])
    expect(carriedBy(second).map(([job]) => job)).toEqual(
      ids(['docs@dev', 'foundation@dev', 'web@dev'])
    )
    const web = harness!.server.jobsOf(runId2).find(j => j.jobId === id('web@dev'))!
    const api = harness!.server.jobsOf(runId2).find(j => j.jobId === id('api@dev'))!
    expect(Date.parse(web.startedAt!)).toBeGreaterThanOrEqual(Date.parse(api.finishedAt!))
  })

  it('a pool, on orun 2.75 (the plan id repeats): "Re-run failed jobs" starts the failed worker again, which carries the successes and runs the rest', async () => {
    const dir = root()
    harness = await new Harness({ env: { ORUN_STANDIN_VERSION: '2.75.0' } }).start()
    const planned = await planRun(
      harness,
      writeFlakyIntent(join(dir, 'attempt-1'), RERUN_SHAPE, ['api@dev'])
    )
    current = planned
    const workers = (intent: string, indexes: number[]) =>
      Promise.all(
        indexes.map(async index => ({
          index,
          main: (
            await harness!.startRunner(`worker-${index}`, intent, {
              ...planned.common,
              'pool-size': '2',
              worker: String(index)
            }).done
          ).main
        }))
      )
    const first = await workers(join(dir, 'attempt-1'), [1, 2])
    const failedWorkers = first.filter(w => w.main.exitCode !== 0).map(w => w.index)
    expect(failedWorkers).toHaveLength(1)
    expect(harness.server.jobsOf(planned.runId).find(j => j.jobId === id('web@dev'))).toMatchObject(
      { status: 'pending' }
    )
    const before = harness.executions().length

    harness.attempt = 2
    const second = await workers(
      writeFlakyIntent(join(dir, 'attempt-2'), RERUN_SHAPE),
      failedWorkers
    )
    expect(second[0].main.exitCode).toBe(0)
    const runId2 = `gha-4242-2-${planned.planId}`
    expect(second[0].main.outputs['run-id']).toBe(runId2)
    expectAllSuccess(harness, runId2, planned.jobs)
    // Only the failed job and the dependent it blocked ran again; the rest was carried.
    expect([...executedSince(harness, before).keys()].sort()).toEqual(ids(['api@dev', 'web@dev']))
    const results = JSON.parse(second[0].main.outputs['job-results']) as Record<
      string,
      { status: string; carriedFrom?: number }
    >
    expect(
      Object.entries(results)
        .filter(([, r]) => r.carriedFrom === 1)
        .map(([job]) => job)
        .sort()
    ).toEqual(planned.jobs.filter(job => !ids(['api@dev', 'web@dev']).includes(job)).sort())
  })
})
