/**
 * Re-runs (see rerun.test.ts), continued: carrying over when no runner made the run, and
 * carrying from an attempt that carried itself. A file of its own so it runs beside the others.
 */
import { describe, expect, it, jest } from '@jest/globals'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runAttempt, writeFlakyIntent } from '../demo/rerun-scenario.js'
import { toBackendPlan } from '../src/backend/plan.js'
import {
  CHAIN,
  WIDE,
  WIDE_BROKEN,
  carriedBy,
  executedSince,
  expectAllSuccess,
  expectNo429Storm,
  jobResults,
  rerunSuite
} from '../testing/rerun-checks.js'

jest.setTimeout(240_000)

const { s, id, ids, attemptOne, wideFailed, wideRerun } = rerunSuite()

describe('re-running a workflow run: who carries', () => {
  it('carries over when nobody is first (the first runner vanished after making the run): the waiting runners take it over, still exactly once', async () => {
    const { dir, planned, first } = await attemptOne(WIDE, WIDE_BROKEN)
    // The run of attempt 2 exists already, as if its maker died at once: every runner joins.
    const runId2 = `gha-4242-2-${planned.planId}`
    const planFile = JSON.parse(readFileSync(planned.common['plan-file'], 'utf8'))
    const token = await s.harness!.server.mintToken()
    const create = () =>
      fetch(`${s.harness!.server.url}/v1/runs`, {
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

    const { second, executed, requests } = await wideRerun(
      s.harness!,
      planned,
      dir,
      first.failedLegs
    )
    for (const runner of second.runners) expect(runner.main.exitCode).toBe(0)
    expectAllSuccess(s.harness!, runId2, planned.jobs)
    expect([...executed.keys()].sort()).toEqual(wideFailed())
    const successes = planned.jobs.filter(j => !wideFailed().includes(j)).sort()
    expect(carriedBy(second).map(([job]) => job)).toEqual(successes)
    expect(second.runners.map(r => r.main.stdout).join('\n')).toContain(
      'Nobody is carrying the earlier successes over'
    )
    // Mostly one runner carries (the waiting runners take their first look in turn, by rank;
    // a turn can still overlap on a loaded machine), and the crowd stays within the race
    // test's bound. Before the turns, every runner took its first look within the same few
    // seconds: 6 to 8 refusals in a row at the server.
    const carried = jobResults(second).map(
      results => Object.values(results).filter(result => result.status === 'carried').length
    )
    expect(Math.max(...carried)).toBeGreaterThan(successes.length / 2)
    expectNo429Storm(requests, second)
  })

  it('attempt 3 carries from attempt 2, which carried from attempt 1', async () => {
    const { dir, planned, first } = await attemptOne(CHAIN, ['api@dev'])
    expect(first.failedLegs.sort()).toEqual(ids(['api@dev', 'web@dev']))
    s.harness!.attempt = 2
    const second = await runAttempt(
      s.harness!,
      planned,
      writeFlakyIntent(join(dir, 'attempt-2'), CHAIN, ['web@dev']),
      first.failedLegs
    )
    expect(second.failedLegs).toEqual([id('web@dev')])
    const before = s.harness!.executions().length

    s.harness!.attempt = 3
    const third = await runAttempt(
      s.harness!,
      planned,
      writeFlakyIntent(join(dir, 'attempt-3'), CHAIN),
      second.failedLegs
    )
    expect(third.runners[0].main.exitCode).toBe(0)
    const runId3 = `gha-4242-3-${planned.planId}`
    expect(third.runners[0].main.outputs['run-id']).toBe(runId3)
    expectAllSuccess(s.harness!, runId3, planned.jobs)
    expect([...executedSince(s.harness!, before).keys()]).toEqual([id('web@dev')])
    // Each carried job names the attempt in which it actually ran.
    expect(carriedBy(third)).toEqual([
      [id('api@dev'), 2],
      [id('docs@dev'), 1],
      [id('foundation@dev'), 1]
    ])
  })
})
