/**
 * The wait planner of the run action: how far a job is from runnable, what
 * blocks it, when it should be done, and how the next poll is timed. Pure
 * functions on hand-built plans and job lists.
 */
import { describe, expect, it } from '@jest/globals'
import type { JobRecord, JobStatus } from '../src/backend/types.js'
import { parsePlan, type Plan } from '../src/plan/model.js'
import { firstLookDelayMs } from '../src/run/acquire.js'
import {
  FAR_MAX_MS,
  FAR_MIN_MS,
  NEAR_MAX_MS,
  NEAR_MIN_MS,
  assess,
  nextPoll,
  typicalDurationMs,
  type WaitAssessment
} from '../src/run/schedule.js'

const NOW = Date.parse('2026-11-20T10:00:00Z')
const iso = (msBeforeNow: number) => new Date(NOW - msBeforeNow).toISOString()

/** A plan from `id: [deps]` pairs, through the real parser. */
function planOf(jobs: Record<string, string[]>): Plan {
  return parsePlan(
    JSON.stringify({
      metadata: { checksum: 'sha256-0123456789abcdef' },
      jobs: Object.entries(jobs).map(([id, dependsOn]) => ({
        id,
        component: id.split('@')[0],
        environment: 'dev',
        dependsOn
      }))
    }),
    'test-plan.json'
  )
}

function record(
  jobId: string,
  status: JobStatus,
  extra: { startedMsAgo?: number; finishedMsAgo?: number; lastError?: string } = {}
): JobRecord {
  return {
    jobId,
    component: jobId.split('@')[0],
    status,
    deps: [],
    runnerId: status === 'pending' ? null : `runner-${jobId}`,
    startedAt: extra.startedMsAgo === undefined ? null : iso(extra.startedMsAgo),
    finishedAt: extra.finishedMsAgo === undefined ? null : iso(extra.finishedMsAgo),
    lastError: extra.lastError ?? null,
    heartbeatAt: status === 'running' ? iso(0) : null
  }
}

/** A finished job that took `ms` (it ended an hour ago). */
const took = (jobId: string, ms: number) =>
  record(jobId, 'success', { startedMsAgo: 3_600_000 + ms, finishedMsAgo: 3_600_000 })

/** a -> b -> c -> d, plus a lone root x. */
const chain = planOf({
  'a@dev': [],
  'b@dev': ['a@dev'],
  'c@dev': ['b@dev'],
  'd@dev': ['c@dev'],
  'x@dev': []
})

describe('typicalDurationMs', () => {
  it('is the median duration of the jobs that succeeded', () => {
    const jobs = [
      took('a', 5_000),
      took('b', 1_000),
      took('c', 60_000),
      took('d', 7_000),
      took('e', 2_000)
    ]
    expect(typicalDurationMs(jobs)).toBe(5_000)
  })

  it('leaves out jobs carried over from an earlier attempt (their claim-to-report span is no run)', () => {
    const carried = (jobId: string) => ({
      ...took(jobId, 30),
      lastError: `carried over from attempt 1 (runner ${jobId}#1-1-99-abc)`
    })
    expect(typicalDurationMs([carried('a'), carried('b'), carried('c'), took('d', 9_000)])).toBe(
      9_000
    )
    expect(typicalDurationMs([carried('a'), carried('b')])).toBeUndefined()
  })

  it('picks one of the two middle durations for an even count', () => {
    const middle = typicalDurationMs([
      took('a', 1_000),
      took('b', 4_000),
      took('c', 6_000),
      took('d', 90_000)
    ])
    expect([4_000, 6_000]).toContain(middle)
  })

  it('ignores failed, running and unfinished jobs, and knows nothing without a success', () => {
    const noise = [
      record('f', 'failed', { startedMsAgo: 50_000, finishedMsAgo: 1_000 }),
      record('r', 'running', { startedMsAgo: 40_000 }),
      record('p', 'pending'),
      { ...took('broken', 1_000), startedAt: 'not a date' }
    ]
    expect(typicalDurationMs(noise)).toBeUndefined()
    expect(typicalDurationMs([...noise, took('ok', 3_000)])).toBe(3_000)
  })
})

describe('assess', () => {
  it('puts a root job, and a job whose dependencies all succeeded, at distance 0', () => {
    const rootView = assess(chain, 'a@dev', [], NOW)
    expect(rootView).toMatchObject({ distance: 0, pendingDeps: [], failedUpstream: [] })
    const ready = assess(chain, 'c@dev', [took('a@dev', 1_000), took('b@dev', 1_000)], NOW)
    expect(ready).toMatchObject({ distance: 0, pendingDeps: [], failedUpstream: [] })
  })

  it('puts a job at distance 1 when its unfinished dependencies run or are ready to run', () => {
    const running = assess(
      chain,
      'b@dev',
      [record('a@dev', 'running', { startedMsAgo: 2_000 })],
      NOW
    )
    expect(running.distance).toBe(1)
    expect(running.pendingDeps.map(d => d.jobId)).toEqual(['a@dev'])

    // b is pending but runnable (a succeeded): c is one step away.
    const ready = assess(chain, 'c@dev', [took('a@dev', 1_000), record('b@dev', 'pending')], NOW)
    expect(ready.distance).toBe(1)
    expect(ready.pendingDeps.map(d => d.jobId)).toEqual(['b@dev'])
  })

  it('counts how many jobs deep the wait is, for records the backend has not listed too', () => {
    // a is ready (a root), b and c wait in between: d is three steps away.
    expect(assess(chain, 'd@dev', [], NOW).distance).toBe(3)
    const aRunning = [record('a@dev', 'running', { startedMsAgo: 1 })]
    expect(assess(chain, 'd@dev', aRunning, NOW).distance).toBe(3)
    const bRunning = [took('a@dev', 5), record('b@dev', 'running', { startedMsAgo: 1 })]
    expect(assess(chain, 'd@dev', bRunning, NOW).distance).toBe(2)
    const cRunning = [took('a@dev', 5), took('b@dev', 5), record('c@dev', 'running')]
    expect(assess(chain, 'd@dev', cRunning, NOW).distance).toBe(1)
    // A dependency missing from the list is taken as pending.
    expect(assess(chain, 'd@dev', [], NOW).pendingDeps).toEqual([
      expect.objectContaining({ jobId: 'c@dev', status: 'pending' })
    ])
  })

  it('takes the deepest branch when a job has several dependencies', () => {
    const diamond = planOf({
      'r@dev': [],
      'deep@dev': ['r@dev'],
      'near@dev': [],
      'z@dev': ['deep@dev', 'near@dev']
    })
    const view = assess(
      diamond,
      'z@dev',
      [record('near@dev', 'running', { startedMsAgo: 1_000 })],
      NOW
    )
    expect(view.distance).toBe(2)
    expect(view.pendingDeps.map(d => d.jobId).sort()).toEqual(['deep@dev', 'near@dev'])
  })

  it('reports a failed ancestor even while the parent in between is still pending', () => {
    const jobs = [record('a@dev', 'failed', { lastError: 'exit 3' }), record('b@dev', 'pending')]
    const view = assess(chain, 'd@dev', jobs, NOW)
    expect(view.failedUpstream.map(u => u.jobId)).toEqual(['a@dev'])
    expect(view.failedUpstream[0].lastError).toBe('exit 3')
    // A failure elsewhere in the run does not block this job.
    expect(assess(chain, 'd@dev', [record('x@dev', 'failed')], NOW).failedUpstream).toEqual([])
  })

  it('reports each failed ancestor once, also through a diamond', () => {
    const diamond = planOf({
      'r@dev': [],
      'left@dev': ['r@dev'],
      'right@dev': ['r@dev'],
      'z@dev': ['left@dev', 'right@dev']
    })
    const view = assess(
      diamond,
      'z@dev',
      [record('r@dev', 'failed'), record('right@dev', 'failed')],
      NOW
    )
    expect(view.failedUpstream.map(u => u.jobId).sort()).toEqual(['r@dev', 'right@dev'])
  })

  it('counts the pending jobs of the run that are one step from runnable', () => {
    const fan = planOf({ 'a@dev': [], 'b@dev': ['a@dev'], 'c@dev': ['a@dev'], 'd@dev': ['b@dev'] })
    const jobs = [
      record('a@dev', 'running', { startedMsAgo: 1_000 }),
      record('b@dev', 'pending'),
      record('c@dev', 'pending'),
      record('d@dev', 'pending')
    ]
    // b and c wait only on a running job; d is further away; a itself is not waiting.
    expect(assess(fan, 'd@dev', jobs, NOW).nearCrowd).toBe(2)
    expect(assess(fan, 'b@dev', jobs, NOW).nearCrowd).toBe(2)
  })

  it('estimates the wait from the typical duration minus what the running dependency already ran', () => {
    const jobs = [took('x@dev', 10_000), record('a@dev', 'running', { startedMsAgo: 4_000 })]
    const view = assess(chain, 'b@dev', jobs, NOW)
    expect(view.etaMs).toBe(6_000)
    expect(view.youngestRunningDepMs).toBe(4_000)
  })

  it('never estimates a negative wait for a dependency that overran', () => {
    const jobs = [took('x@dev', 10_000), record('a@dev', 'running', { startedMsAgo: 25_000 })]
    expect(assess(chain, 'b@dev', jobs, NOW).etaMs).toBe(0)
  })

  it('adds a typical duration for each job still to run in between', () => {
    const jobs = [took('x@dev', 10_000), record('a@dev', 'running', { startedMsAgo: 4_000 })]
    // a ends in ~6 s, then b and c each take ~10 s before d can run.
    expect(assess(chain, 'd@dev', jobs, NOW).etaMs).toBe(26_000)
  })

  it('has no estimate before any job finished', () => {
    const view = assess(chain, 'b@dev', [record('a@dev', 'running', { startedMsAgo: 4_000 })], NOW)
    expect(view.etaMs).toBeUndefined()
    expect(view.youngestRunningDepMs).toBe(4_000)
  })

  it('follows the most recently started of several running dependencies', () => {
    const fan = planOf({ 'p@dev': [], 'q@dev': [], 'z@dev': ['p@dev', 'q@dev'] })
    const jobs = [
      record('p@dev', 'running', { startedMsAgo: 30_000 }),
      record('q@dev', 'running', { startedMsAgo: 5_000 })
    ]
    expect(assess(fan, 'z@dev', jobs, NOW).youngestRunningDepMs).toBe(5_000)
  })
})

/** A random source that always answers the same value. */
const fixed = (value: number) => () => value
/** The extremes random() can return, and the middle. */
const EXTREMES = [0, 0.5, 0.999999]

function near(extra: Partial<WaitAssessment> = {}): WaitAssessment {
  return {
    failedUpstream: [],
    pendingDeps: [],
    distance: 1,
    nearCrowd: 1,
    unfinishedAncestors: 1,
    runJobs: 40,
    ...extra
  }
}

describe('nextPoll', () => {
  it('claims at once when every dependency succeeded', () => {
    for (const r of EXTREMES) {
      expect(nextPoll(near({ distance: 0 }), 0, fixed(r))).toEqual({ delayMs: 0, via: 'claim' })
      expect(nextPoll(near({ distance: 0, etaMs: 50_000 }), 7, fixed(r))).toEqual({
        delayMs: 0,
        via: 'claim'
      })
    }
  })

  it('polls with claim at distance 1, first sleeping about until the dependency should end', () => {
    const eta = 12_000
    for (const r of EXTREMES) {
      const poll = nextPoll(near({ etaMs: eta, youngestRunningDepMs: 3_000 }), 0, fixed(r))
      expect(poll.via).toBe('claim')
      expect(poll.delayMs).toBeGreaterThanOrEqual(eta * 0.85)
      expect(poll.delayMs).toBeLessThanOrEqual(eta * 1.15 + 1_000)
    }
  })

  it('never sleeps longer than the near cap, even for a long estimate', () => {
    for (const r of EXTREMES) {
      const poll = nextPoll(near({ etaMs: 10 * NEAR_MAX_MS }), 0, fixed(r))
      expect(poll.via).toBe('claim')
      expect(poll.delayMs).toBeLessThanOrEqual(NEAR_MAX_MS)
      expect(poll.delayMs).toBeGreaterThanOrEqual(NEAR_MIN_MS)
    }
  })

  it('backs off as polls at distance 1 go unanswered, staying within the near bounds', () => {
    for (const view of [near({ etaMs: 0, youngestRunningDepMs: 20_000 }), near({ etaMs: 5_000 })]) {
      const delays = Array.from({ length: 30 }, (_, polls) => nextPoll(view, polls, fixed(0.5)))
      expect(delays.every(p => p.via === 'claim')).toBe(true)
      const ms = delays.map(p => p.delayMs)
      for (let i = 2; i < ms.length; i++) expect(ms[i]).toBeGreaterThanOrEqual(ms[i - 1])
      expect(ms[ms.length - 1]).toBeGreaterThan(ms[1])
      for (const r of EXTREMES) {
        for (let polls = 0; polls < 30; polls++) {
          const delay = nextPoll(view, polls, fixed(r)).delayMs
          expect(delay).toBeLessThanOrEqual(NEAR_MAX_MS)
          expect(delay).toBeGreaterThanOrEqual(NEAR_MIN_MS)
        }
      }
    }
  })

  it('without an estimate, polls a long-running dependency less often than a fresh one', () => {
    const fresh = nextPoll(near({ youngestRunningDepMs: 1_000 }), 1, fixed(0.5)).delayMs
    const old = nextPoll(near({ youngestRunningDepMs: 40_000 }), 1, fixed(0.5)).delayMs
    expect(old).toBeGreaterThan(fresh)
    for (const r of EXTREMES) {
      for (const elapsed of [0, 1_000, 40_000, 3_600_000]) {
        const delay = nextPoll(near({ youngestRunningDepMs: elapsed }), 1, fixed(r)).delayMs
        expect(delay).toBeGreaterThanOrEqual(NEAR_MIN_MS)
        expect(delay).toBeLessThanOrEqual(NEAR_MAX_MS)
      }
    }
  })

  it('polls less often when more jobs wait one step away on the same rate limit', () => {
    const alone = nextPoll(near({ youngestRunningDepMs: 2_000, nearCrowd: 1 }), 1, fixed(0.5))
    const crowded = nextPoll(near({ youngestRunningDepMs: 2_000, nearCrowd: 60 }), 1, fixed(0.5))
    expect(crowded.delayMs).toBeGreaterThan(alone.delayMs)
    expect(crowded.delayMs).toBeLessThanOrEqual(NEAR_MAX_MS)
  })

  it('watches the job list from further away, within the far bounds', () => {
    for (const r of EXTREMES) {
      for (const distance of [2, 3, 10, 50]) {
        for (const etaMs of [undefined, 0, 5_000, 600_000]) {
          for (const polls of [0, 1, 5, 40]) {
            const poll = nextPoll(near({ distance, etaMs }), polls, fixed(r))
            expect(poll.via).toBe('jobs')
            expect(poll.delayMs).toBeGreaterThanOrEqual(FAR_MIN_MS)
            expect(poll.delayMs).toBeLessThanOrEqual(FAR_MAX_MS)
          }
        }
      }
    }
  })

  it('looks later the deeper the job sits, and backs off while nothing moves', () => {
    const at = (distance: number, polls: number) =>
      nextPoll(near({ distance }), polls, fixed(0.5)).delayMs
    expect(at(3, 0)).toBeGreaterThanOrEqual(at(2, 0))
    expect(at(2, 3)).toBeGreaterThan(at(2, 0))
    // With an estimate, it wakes around when the job should be one step away.
    const eta = 40_000
    const poll = nextPoll(near({ distance: 2, etaMs: eta }), 0, fixed(0.5))
    expect(poll.delayMs).toBeLessThan(eta)
  })

  it('spreads runners that poll at the same moment', () => {
    const view = near({ distance: 3 })
    const low = nextPoll(view, 0, fixed(0)).delayMs
    const high = nextPoll(view, 0, fixed(0.999999)).delayMs
    expect(high).toBeGreaterThan(low)
    const nearLow = nextPoll(near({ youngestRunningDepMs: 4_000 }), 1, fixed(0)).delayMs
    const nearHigh = nextPoll(near({ youngestRunningDepMs: 4_000 }), 1, fixed(0.999999)).delayMs
    expect(nearHigh).toBeGreaterThan(nearLow)
  })
})

describe('crowd scaling', () => {
  it('lets a small plan look and poll sooner than a large one, where runners share the rate limit', () => {
    expect(firstLookDelayMs(2, 6)).toBeLessThan(firstLookDelayMs(2, 40))
    expect(firstLookDelayMs(1, 40)).toBeLessThan(firstLookDelayMs(2, 40))
    expect(firstLookDelayMs(0, 40)).toBe(0)
    const far = (runJobs: number) => nextPoll(near({ distance: 3, runJobs }), 0, fixed(0)).delayMs
    expect(far(6)).toBeLessThan(far(40))
    expect(far(6)).toBeGreaterThanOrEqual(FAR_MIN_MS)
    expect(far(400)).toBeLessThanOrEqual(FAR_MAX_MS)
  })
})
