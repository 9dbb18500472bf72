/**
 * Re-runs (see rerun.test.ts), continued: a run that is gone, a custom run id and "Re-run all
 * jobs", "Re-run job", and a pool. A file of its own so it runs beside the others.
 */
import { describe, expect, it, jest } from '@jest/globals'
import { join } from 'node:path'
import { Harness } from '../demo/harness.js'
import { RERUN_SHAPE, planRun, runAttempt, writeFlakyIntent } from '../demo/rerun-scenario.js'
import {
  CHAIN,
  carriedBy,
  executedSince,
  expectAllSuccess,
  rerunSuite,
  root
} from '../testing/rerun-checks.js'

jest.setTimeout(240_000)

const { s, id, ids, attemptOne } = rerunSuite()

describe('re-running a workflow run: gone runs, custom ids, one job, a pool', () => {
  it('fails at once, saying to use "Re-run all jobs", when the earlier run and its results record are gone', async () => {
    const { dir, planned, first } = await attemptOne(CHAIN, ['api@dev'])
    expect(s.harness!.server.deleteRun(planned.runId)).toBe(true)
    // The record's artifacts expired or were deleted too.
    const records = s.harness!.artifacts!.artifacts('4242')
    expect(records.length).toBeGreaterThan(0)
    for (const record of records) s.harness!.artifacts!.deleteArtifact('4242', record.name)
    s.harness!.attempt = 2
    const started = Date.now()
    const second = await runAttempt(
      s.harness!,
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
    expect(s.harness!.server.jobsOf(`gha-4242-2-${planned.planId}`)).toEqual([])
  })

  it('with a custom run id: attempt 2 works in <id>-a2; "Re-run all jobs" makes the plan job name a fresh run', async () => {
    const { dir, planned, first } = await attemptOne(CHAIN, ['api@dev'], {
      'run-id': 'deploy-4242'
    })
    expect(planned.runId).toBe('deploy-4242')
    s.harness!.attempt = 2
    const second = await runAttempt(
      s.harness!,
      planned,
      writeFlakyIntent(join(dir, 'attempt-2'), CHAIN),
      first.failedLegs
    )
    for (const runner of second.runners) {
      expect(runner.main.exitCode).toBe(0)
      expect(runner.main.outputs['run-id']).toBe('deploy-4242-a2')
    }
    expectAllSuccess(s.harness!, 'deploy-4242-a2', planned.jobs)
    expect(carriedBy(second).map(([job]) => job)).toEqual(ids(['docs@dev', 'foundation@dev']))

    // "Re-run all jobs" in attempt 3: the plan job runs again and names attempt 3's run: nothing is carried.
    s.harness!.attempt = 3
    const rerunAll = await planRun(s.harness!, writeFlakyIntent(join(dir, 'attempt-3'), CHAIN), {
      'run-id': 'deploy-4242'
    })
    expect(rerunAll.runId).toBe('deploy-4242-a3')
    const before = s.harness!.executions().length
    const third = await runAttempt(
      s.harness!,
      rerunAll,
      writeFlakyIntent(join(dir, 'attempt-3'), CHAIN),
      rerunAll.jobs
    )
    expect(third.failedLegs).toEqual([])
    expect(carriedBy(third)).toEqual([])
    expect([...executedSince(s.harness!, before).keys()].sort()).toEqual([...planned.jobs].sort())
  })

  it('"Re-run job" on a job that succeeded runs it again and carries the rest, its dependents after it', async () => {
    const { dir, planned, first } = await attemptOne(CHAIN, [])
    expect(first.failedLegs).toEqual([])
    s.harness!.attempt = 2
    const before = s.harness!.executions().length
    const second = await runAttempt(
      s.harness!,
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
    expectAllSuccess(s.harness!, runId2, planned.jobs)
    expect([...executedSince(s.harness!, before).keys()]).toEqual([id('api@dev')])
    expect(carriedBy(second).map(([job]) => job)).toEqual(
      ids(['docs@dev', 'foundation@dev', 'web@dev'])
    )
    const web = s.harness!.server.jobsOf(runId2).find(j => j.jobId === id('web@dev'))!
    const api = s.harness!.server.jobsOf(runId2).find(j => j.jobId === id('api@dev'))!
    expect(Date.parse(web.startedAt!)).toBeGreaterThanOrEqual(Date.parse(api.finishedAt!))
  })

  it('a pool, on orun 2.75 (the plan id repeats): "Re-run failed jobs" starts the failed worker again, which carries the successes and runs the rest', async () => {
    const dir = root()
    const harness = (s.harness = await new Harness({
      env: { ORUN_STANDIN_VERSION: '2.75.0' }
    }).start())
    const planned = await planRun(
      harness,
      writeFlakyIntent(join(dir, 'attempt-1'), RERUN_SHAPE, ['api@dev'])
    )
    s.current = planned
    const workers = (intent: string, indexes: number[]) =>
      Promise.all(
        indexes.map(async index => ({
          index,
          main: (
            await s.harness!.startRunner(`worker-${index}`, intent, {
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
