/**
 * What the re-run suites (rerun*.test.ts) share: a harness per test, closed after it, the
 * plan of the running test (job ids by `<component>@<env>`), attempt 1 of a flaky plan, and
 * the checks each re-run makes. Split over several files so jest runs them side by side:
 * each test waits on the server's rate limit far more than it computes.
 */
import { DEFAULT_BACKEND_BUILD, type BackendBuild } from './coordination-server.js'
import { afterEach, expect } from '@jest/globals'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Harness } from '../demo/harness.js'
import {
  planRun,
  runAttempt,
  writeFlakyIntent,
  type AttemptOutcome,
  type IntentShape,
  type PlannedRun
} from '../demo/rerun-scenario.js'
import type { RecordedRequest } from './coordination-server.js'

export const root = () => mkdtempSync(join(tmpdir(), 'orun-rerun-'))

/** Which attempt-2+ jobs ran (orun executions after `from`), by job id, with their exit codes. */
export function executedSince(h: Harness, from: number): Map<string, number[]> {
  const ran = new Map<string, number[]>()
  for (const e of h.executions().slice(from))
    ran.set(e.job, [...(ran.get(e.job) ?? []), e.exitCode])
  return ran
}

export function jobResults(outcome: AttemptOutcome) {
  return outcome.runners.map(
    r =>
      JSON.parse(r.main.outputs['job-results'] ?? '{}') as Record<
        string,
        { status: string; carriedFrom?: number }
      >
  )
}

/** Jobs each runner reported as carried over by itself, with the attempt they came from. */
export function carriedBy(outcome: AttemptOutcome): Array<[string, number | undefined]> {
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
export function expectNo429Storm(requests: RecordedRequest[], outcome: AttemptOutcome) {
  let streak: RecordedRequest[] = []
  let longest: RecordedRequest[] = []
  for (const r of requests) {
    streak = r.status === 429 ? [...streak, r] : []
    if (streak.length > longest.length) longest = streak
  }
  // On failure, the streak and the 12 requests before it: when, status, route, which runner.
  const t0 = requests[0]?.at ?? 0
  const from = Math.max(0, requests.indexOf(longest[0]!) - 12)
  const window = requests.slice(from, from + 12 + longest.length)
  expect(
    longest.length <= 5
      ? []
      : window.map(r => `+${r.at - t0}ms ${r.status} ${r.route} ${r.runnerId ?? '-'} ${r.path}`)
  ).toEqual([])
  expect(requests.filter(r => r.status === 429).length).toBeLessThanOrEqual(requests.length / 4)
  for (const runner of outcome.runners)
    expect(runner.main.summary).toMatch(/: \d+ backend requests, \d+ rate-limited\./)
}

export function expectAllSuccess(h: Harness, runId: string, jobs: string[]) {
  const stored = h.server.jobsOf(runId)
  expect(stored.map(j => j.jobId).sort()).toEqual([...jobs].sort())
  expect(stored.filter(j => j.status !== 'success')).toEqual([])
  // Exactly once in this attempt's run: every job claimed once, carried or executed.
  expect(stored.filter(j => j.claims !== 1)).toEqual([])
}

/** A 20-job plan: net -> db -> api -> web and an independent docs, in four environments. */
export const WIDE: IntentShape = {
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
export const WIDE_BROKEN = ['db@dev', 'db@stage', 'docs@dev', 'docs@stage']

export const CHAIN: IntentShape = {
  name: 'rerun-chain',
  environments: ['dev'],
  components: [
    { name: 'foundation' },
    { name: 'api', dependsOn: ['foundation'] },
    { name: 'web', dependsOn: ['api'] },
    { name: 'docs' }
  ]
}

/** A suite's harness (one per test, closed after it) and the helpers bound to its running plan. */
export function rerunSuite() {
  const s = {
    harness: undefined as Harness | undefined,
    /** The plan of the test that runs: its job ids by `<component>@<env>`. */
    current: undefined as PlannedRun | undefined
  }
  afterEach(async () => {
    await s.harness?.close()
    s.harness = undefined
  })
  const id = (pair: string) => s.current!.idOf(pair)
  const ids = (pairs: string[]) => pairs.map(id).sort()

  async function attemptOne(
    shape: IntentShape,
    broken: string[],
    inputs = {},
    build: BackendBuild = DEFAULT_BACKEND_BUILD
  ) {
    const dir = root()
    const harness = (s.harness = await new Harness({ server: { build } }).start())
    const intent = writeFlakyIntent(join(dir, 'attempt-1'), shape, broken)
    const planned = await planRun(harness, intent, inputs)
    s.current = planned
    const first = await runAttempt(harness, planned, intent, planned.jobs)
    return { dir, planned, first }
  }

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
    // A user presses "Re-run failed jobs" after attempt 1 has ended, not within the second its
    // last requests spent the burst: the crowd meets a full bucket, as it would there. (Started
    // on an empty one, six 429s in a row at the server came from the timing, not the runners.)
    await h.server.whenRateLimitRefilled()
    const executedBefore = h.executions().length
    const requestsBefore = h.server.requests.length
    const second = await runAttempt(h, planned, fixed, [
      ...failedLegs,
      id('db@dev'),
      id('web@stage')
    ])
    const requests = h.server.requests
      .slice(requestsBefore)
      .filter(r => r.route !== 'token' && r.route !== 'jwks')
    return { second, executed: executedSince(h, executedBefore), requests }
  }

  return { s, id, ids, attemptOne, wideFailed, wideRerun }
}
