/**
 * The status summary's Cost section: runner time from GitHub's job times against
 * the job time used, and the other mode estimated from the same run's durations.
 */
import { describe, expect, it } from '@jest/globals'
import type { JobRecord, RunRecord } from '../src/backend/types.js'
import { parsePlan } from '../src/plan/model.js'
import { estimateCost, renderCost } from '../src/status/cost.js'
import type { GitHubJob } from '../src/status/links.js'
import { classifyRun } from '../src/status/outcome.js'
import { renderStatusSummary } from '../src/status/summary.js'

const T0 = Date.parse('2026-11-26T10:00:00Z')
const iso = (seconds: number) => new Date(T0 + seconds * 1000).toISOString()

/** a -> b, a -> c, b -> d: critical path a, b, d. */
const plan = parsePlan(
  JSON.stringify({
    metadata: { checksum: 'sha256-cafe0000cafe0000' },
    jobs: [
      { id: 'a@dev', component: 'a', environment: 'dev', steps: [{ run: 'true' }] },
      {
        id: 'b@dev',
        component: 'b',
        environment: 'dev',
        dependsOn: ['a@dev'],
        steps: [{ run: 'true' }]
      },
      {
        id: 'c@dev',
        component: 'c',
        environment: 'dev',
        dependsOn: ['a@dev'],
        steps: [{ run: 'true' }]
      },
      {
        id: 'd@dev',
        component: 'd',
        environment: 'dev',
        dependsOn: ['b@dev'],
        steps: [{ run: 'true' }]
      }
    ]
  }),
  'plan.json'
)

const run: RunRecord = {
  runId: 'gha-1-1-abc',
  status: 'completed',
  planChecksum: 'x',
  createdAt: iso(0),
  updatedAt: iso(200),
  jobTotal: 4,
  jobDone: 4,
  jobFailed: 0
}

function done(jobId: string, start: number, end: number, runner: string): JobRecord {
  return {
    jobId,
    component: jobId.split('@')[0],
    status: 'success',
    deps: [],
    runnerId: `${runner}-1-42-abcdef`,
    startedAt: iso(start),
    finishedAt: iso(end),
    lastError: null,
    heartbeatAt: null
  }
}

const gh = (id: number, runner: string, start: number, end: number): GitHubJob => ({
  id,
  name: runner,
  htmlUrl: `https://github.com/o/r/actions/runs/1/job/${id}`,
  runnerName: runner,
  startedAt: iso(start),
  completedAt: iso(end),
  runAttempt: 1
})

describe('what the run cost', () => {
  it('a matrix run: runner time per GitHub job, billed per minute, and the pool it would have been', () => {
    // Every job 60 s; each runner up 10 s before the first job and 5 s after its own.
    const records = [
      done('a@dev', 10, 70, 'ra'),
      done('b@dev', 70, 130, 'rb'),
      done('c@dev', 70, 130, 'rc'),
      done('d@dev', 130, 190, 'rd')
    ]
    const view = classifyRun(plan, run.runId, run, records)
    const links = new Map([
      ['a@dev', gh(1, 'ra', 0, 75)],
      ['b@dev', gh(2, 'rb', 0, 135)],
      ['c@dev', gh(3, 'rc', 0, 135)],
      ['d@dev', gh(4, 'rd', 0, 195)]
    ])
    const cost = estimateCost(view, links)!
    expect(cost.mode).toBe('matrix')
    expect(cost.runners).toBe(4)
    expect(cost.runnerMs).toBe((75 + 135 + 135 + 195) * 1000)
    expect(cost.billedMinutes).toBe(2 + 3 + 3 + 4)
    expect(cost.jobMs).toBe(240_000)
    // Outside the jobs: 10 s before the first start and 5 s after the last end, each.
    expect(cost.overheadMs).toBe(15_000)
    // auto: 4 jobs over 3 levels = 2 workers, each for the critical path (180 s) plus 15 s.
    expect(cost.other).toEqual({
      mode: 'pool',
      runners: 2,
      runnerMs: 2 * 195_000,
      billedMinutes: 2 * 4
    })
    const section = renderCost(cost).join('\n')
    expect(section).toContain('| this run (matrix) | 4 | 9m 00s | 12 | 2.25 |')
    expect(section).toContain('| pool, estimated | 2 |')
  })

  it('a pool run: the matrix estimate holds one runner per job until its job can end', () => {
    const records = [
      done('a@dev', 10, 70, 'w1'),
      done('b@dev', 70, 130, 'w1'),
      done('c@dev', 70, 130, 'w2'),
      done('d@dev', 130, 190, 'w1')
    ]
    const view = classifyRun(plan, run.runId, run, records)
    const links = new Map([
      ['a@dev', gh(1, 'w1', 0, 195)],
      ['b@dev', gh(1, 'w1', 0, 195)],
      ['c@dev', gh(2, 'w2', 0, 200)],
      ['d@dev', gh(1, 'w1', 0, 195)]
    ])
    const cost = estimateCost(view, links)!
    expect(cost.mode).toBe('pool')
    expect(cost.runners).toBe(2)
    expect(cost.runnerMs).toBe(395_000)
    // Earliest finishes 60, 120, 120, 180 s; plus the median overhead (w1: 15 s, w2: 80 s).
    const overhead = cost.overheadMs!
    expect(cost.other.mode).toBe('matrix')
    expect(cost.other.runners).toBe(4)
    expect(cost.other.runnerMs).toBe((60 + 120 + 120 + 180) * 1000 + 4 * overhead)
  })

  it('without GitHub job times it still shows the job time and says why runner time is missing', () => {
    const records = [
      done('a@dev', 10, 70, 'ra'),
      done('b@dev', 70, 130, 'rb'),
      done('c@dev', 70, 130, 'rc'),
      done('d@dev', 130, 190, 'rd')
    ]
    const view = classifyRun(plan, run.runId, run, records)
    const cost = estimateCost(view, new Map())!
    expect(cost.runnerMs).toBeUndefined()
    const section = renderCost(cost).join('\n')
    expect(section).toContain("GitHub's job times could not be read")
    const summary = renderStatusSummary({
      view,
      planId: plan.id,
      links: new Map(),
      tails: { tails: new Map(), notFetched: 0 },
      notes: [],
      attempt: 1,
      now: T0 + 300_000,
      cost: renderCost(cost)
    })
    expect(summary).toContain('### Cost')
    expect(summary.indexOf('### Cost')).toBeLessThan(summary.indexOf('### Jobs'))
  })

  it('has nothing to say when no job of this attempt ran', () => {
    const view = classifyRun(plan, run.runId, undefined, [])
    expect(renderCost(estimateCost(view, new Map()))).toEqual([])
  })
})
