/**
 * Re-runs through the bundled actions against the local server: GitHub's
 * "Re-run failed jobs" starts only the failed legs, with the plan job's
 * outputs of the attempt it last ran in; "Re-run job" starts one leg;
 * "Re-run all jobs" runs the plan job again.
 */
import { describe, expect, it, jest } from '@jest/globals'
import { join } from 'node:path'
import { RERUN_SHAPE, runAttempt, writeFlakyIntent } from '../demo/rerun-scenario.js'
import { customRunId, parseRunId } from '../src/common/attempt.js'
import { BACKEND_BUILDS, type BackendBuild } from '../testing/coordination-server.js'
import {
  WIDE,
  WIDE_BROKEN,
  carriedBy,
  executedSince,
  expectAllSuccess,
  expectNo429Storm,
  rerunSuite
} from '../testing/rerun-checks.js'

jest.setTimeout(240_000)

const { s, id, ids, attemptOne, wideFailed, wideRerun } = rerunSuite()

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
      const firstExecutions = s.harness!.executions().length
      if (build === '2026-05-08') {
        expect(s.harness!.server.dropLiveState(planned.runId)).toBe(true)
      }

      s.harness!.attempt = 2
      const fixed = writeFlakyIntent(join(dir, 'attempt-2'), RERUN_SHAPE)
      const requestsBefore = s.harness!.server.requests.length
      const second = await runAttempt(s.harness!, planned, fixed, first.failedLegs)

      const runId2 = `gha-4242-2-${planned.planId}`
      for (const runner of second.runners) {
        expect(runner.main.exitCode).toBe(0)
        expect(runner.main.outputs['run-id']).toBe(runId2)
        expect(runner.main.outputs.status).toBe('success')
      }
      expectAllSuccess(s.harness!, runId2, planned.jobs)
      // The attempt-1 run keeps its history.
      expect(
        s.harness!.server.jobsOf(planned.runId).find(j => j.jobId === id('api@dev'))!.status
      ).toBe('failed')

      // Earlier successes executed exactly once overall; the fixed job and its dependent ran in attempt 2.
      const executed = executedSince(s.harness!, firstExecutions)
      expect([...executed.keys()].sort()).toEqual(ids(['api@dev', 'web@dev']))
      expect([...executed.values()]).toEqual([[0], [0]])
      const all = s.harness!.executions()
      for (const job of planned.jobs.filter(j => !first.failedLegs.includes(j)))
        expect(all.filter(e => e.job === job)).toHaveLength(1)
      const api = all.filter(e => e.job === id('api@dev')).at(-1)!
      const web = all.find(e => e.job === id('web@dev'))!
      expect(web.start).toBeGreaterThanOrEqual(api.end)

      // Carried jobs say where they ran; each was carried by exactly one runner, from attempt 1.
      const stored = s.harness!.server.jobsOf(runId2)
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
      const requests = s.harness!.server.requests.slice(requestsBefore)
      // Each request as "<status> <runner> <path>", so that a failure shows who sent the extra ones.
      const carriedRequests = (route: string) =>
        requests
          .filter(
            r =>
              r.route === route && carried.some(j => r.path.includes(encodeURIComponent(j.jobId)))
          )
          .map(r => `${r.status} ${s.harness!.labelOf(r.runnerId ?? null)} ${r.path}`)
      expect(carriedRequests('claim')).toHaveLength(carried.length)
      expect(carriedRequests('update')).toHaveLength(carried.length)
      expect(s.harness!.server.runPhase(planned.runId)).toBe(
        build === '2026-05-08' ? 'copy' : 'live'
      )
    }
  )

  it('stays exactly-once when 10 re-run runners start at once over a 20-job plan with 12 earlier successes, without a 429 storm', async () => {
    const { dir, planned, first } = await attemptOne(WIDE, WIDE_BROKEN)
    expect(first.failedLegs.sort()).toEqual(wideFailed())
    const { second, executed, requests } = await wideRerun(
      s.harness!,
      planned,
      dir,
      first.failedLegs
    )

    for (const runner of second.runners) expect(runner.main.exitCode).toBe(0)
    const runId2 = `gha-4242-2-${planned.planId}`
    expectAllSuccess(s.harness!, runId2, planned.jobs)
    expect([...executed.keys()].sort()).toEqual(wideFailed())
    expect([...executed.values()].every(codes => codes.length === 1 && codes[0] === 0)).toBe(true)
    const successes = planned.jobs.filter(j => !wideFailed().includes(j)).sort()
    expect(carriedBy(second).map(([job]) => job)).toEqual(successes)
    expectNo429Storm(requests, second)
  })
})
