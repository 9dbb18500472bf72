import type { JobRecord } from '../backend/types.js'
import type { Plan } from '../plan/model.js'
import type { Random } from '../common/retry.js'
import { readCarriedNote } from '../common/carried-note.js'

/**
 * How a waiting runner spends the repository's shared rate limit (burst 20,
 * 5 requests/s for every runner of every run). A job whose unfinished
 * dependencies are all running ("distance 1") is about to become runnable: it
 * polls with claim itself, which both checks and takes the job in one request,
 * timed by when its dependencies should end. A job further away polls the
 * whole run's job list rarely, only to learn when it moves closer.
 */

export interface WaitAssessment {
  /** Ancestors (direct or not) that failed: the job can never run. */
  failedUpstream: JobRecord[]
  /** Direct dependencies that have not succeeded yet. */
  pendingDeps: JobRecord[]
  /** 0: every dependency succeeded; 1: the unfinished ones are running or ready; n: n jobs deep. */
  distance: number
  /** Estimated time until the job is runnable, when finished jobs give a typical duration. */
  etaMs?: number
  /** Time since the most recently started running dependency began. */
  youngestRunningDepMs?: number
  /** Pending jobs of the run that are one step from runnable: the crowd sharing the rate limit with this one. */
  nearCrowd: number
  /** Ancestors that have not succeeded yet: when it drops, the run made progress toward this job. */
  unfinishedAncestors: number
  /** Jobs in the run: every one may have a runner sharing the rate limit. */
  runJobs: number
}

export function typicalDurationMs(jobs: readonly JobRecord[]): number | undefined {
  // A job carried over from an earlier attempt took the milliseconds between its claim and its
  // report, not its run: counted, it made every estimate in a re-run "already passed".
  const durations = jobs
    .filter(
      job =>
        job.status === 'success' &&
        job.startedAt &&
        job.finishedAt &&
        !readCarriedNote(job.lastError)
    )
    .map(job => Date.parse(job.finishedAt!) - Date.parse(job.startedAt!))
    .filter(ms => Number.isFinite(ms) && ms >= 0)
    .sort((a, b) => a - b)
  return durations.length ? durations[Math.floor(durations.length / 2)] : undefined
}

export function assess(
  plan: Plan,
  jobId: string,
  jobs: readonly JobRecord[],
  now: number
): WaitAssessment {
  const byId = new Map(jobs.map(job => [job.jobId, job]))
  const status = (id: string) => byId.get(id)?.status ?? 'pending'
  const deps = (id: string) => plan.byId.get(id)?.dependsOn ?? byId.get(id)?.deps ?? []
  const typical = typicalDurationMs(jobs)
  const level = new Map<string, { depth: number; eta?: number }>()

  // depth 1 = running, or pending with every dependency done; deeper = waits on deeper jobs.
  const measure = (id: string): { depth: number; eta?: number } => {
    const known = level.get(id)
    if (known) return known
    const record = byId.get(id)
    let result: { depth: number; eta?: number }
    if (status(id) === 'running') {
      const elapsed = record?.startedAt ? now - Date.parse(record.startedAt) : 0
      result = { depth: 1, eta: typical === undefined ? undefined : Math.max(0, typical - elapsed) }
    } else {
      const open = deps(id).filter(dep => status(dep) !== 'success')
      const inner = open.map(measure)
      const depth = 1 + Math.max(0, ...inner.map(m => m.depth))
      const innerEta = inner.length ? Math.max(...inner.map(m => m.eta ?? NaN)) : 0
      result = {
        depth: open.length ? depth : 1,
        eta: typical === undefined || Number.isNaN(innerEta) ? undefined : innerEta + typical
      }
    }
    level.set(id, result)
    return result
  }

  const failedUpstream: JobRecord[] = []
  const seen = new Set<string>()
  const stack = [...deps(jobId)]
  let unfinishedAncestors = 0
  while (stack.length) {
    const id = stack.pop()!
    if (seen.has(id)) continue
    seen.add(id)
    if (status(id) === 'failed') failedUpstream.push(byId.get(id)!)
    if (status(id) !== 'success') unfinishedAncestors++
    stack.push(...deps(id))
  }

  const pendingDeps = deps(jobId)
    .filter(dep => status(dep) !== 'success')
    .map(dep => byId.get(dep) ?? emptyRecord(dep))
  const measured = pendingDeps.map(dep => measure(dep.jobId))
  const etas = measured.map(m => m.eta)
  const runningStarts = pendingDeps
    .filter(dep => dep.status === 'running' && dep.startedAt)
    .map(dep => now - Date.parse(dep.startedAt!))
  const nearCrowd = jobs.filter(
    job =>
      job.status === 'pending' &&
      deps(job.jobId).some(dep => status(dep) !== 'success') &&
      deps(job.jobId).every(dep => status(dep) === 'success' || measure(dep).depth === 1)
  ).length
  return {
    runJobs: Math.max(jobs.length, plan.order.length),
    unfinishedAncestors,
    nearCrowd,
    failedUpstream,
    pendingDeps,
    distance: Math.max(0, ...measured.map(m => m.depth)),
    etaMs:
      etas.length && etas.every(eta => eta !== undefined)
        ? Math.max(...(etas as number[]))
        : undefined,
    youngestRunningDepMs: runningStarts.length ? Math.min(...runningStarts) : undefined
  }
}

function emptyRecord(jobId: string): JobRecord {
  return {
    jobId,
    component: '',
    status: 'pending',
    deps: [],
    runnerId: null,
    startedAt: null,
    finishedAt: null,
    lastError: null,
    heartbeatAt: null
  }
}

export interface PollPlan {
  delayMs: number
  /** claim: ask for the job itself; jobs: refresh the run's job list. */
  via: 'claim' | 'jobs'
}

/**
 * Written for the tight limit (5 requests a second for every runner of the
 * repository); `scale` (LearnedLimit) shrinks them where the limit is ampler.
 * Near jobs share about 3 of them (one poll per ~330 ms of the crowd on average,
 * after jitter), so the bucket refills while they wait: when a DAG level ends,
 * its results, logs and the next level's claims all come at once and need that
 * reserve. (At ~250 ms the bucket stays empty and those bursts turn into 429 storms.)
 */
export const NEAR_SHARE_MS = 270
export const NEAR_MIN_MS = 1_000
export const NEAR_MAX_MS = 30_000
export const FAR_MIN_MS = 4_000
export const FAR_MAX_MS = 60_000
/** The least delays however ample the limit: a poll answers within milliseconds locally. */
export const NEAR_FLOOR_MS = 300
export const FAR_FLOOR_MS = 1_000

/**
 * When and how to poll next. `pollsAtThisDistance` counts polls since the
 * distance last changed, so a wait that drags on backs off. `scale` shrinks
 * every spacing that exists to share the rate limit (1: as tuned for 5/s).
 */
export function nextPoll(
  assessment: WaitAssessment,
  pollsAtThisDistance: number,
  random: Random = Math.random,
  scale = 1
): PollPlan {
  const { distance, etaMs, youngestRunningDepMs } = assessment
  const nearMin = Math.max(NEAR_FLOOR_MS, NEAR_MIN_MS * scale)
  const farMin = Math.max(FAR_FLOOR_MS, FAR_MIN_MS * scale)
  if (distance === 0) return { delayMs: 0, via: 'claim' }
  if (distance === 1) {
    if (etaMs !== undefined && pollsAtThisDistance === 0 && etaMs > nearMin) {
      // Sleep until the dependencies should be done, then poll close behind.
      return {
        delayMs: jittered(etaMs + 300 * scale, 0.05, nearMin, NEAR_MAX_MS, random),
        via: 'claim'
      }
    }
    // No estimate yet (nothing in the run has finished), or the estimate has passed: poll at
    // this job's share of the rate limit among the jobs as close as it is, backing off as the
    // dependencies' run time grows so long jobs cost few requests.
    const fairShare = assessment.nearCrowd * NEAR_SHARE_MS * scale
    const overrun =
      etaMs !== undefined
        ? 1_000 * scale * 1.5 ** pollsAtThisDistance
        : ((youngestRunningDepMs ?? 0) / 8) * scale
    const base = Math.max(fairShare, overrun)
    return { delayMs: jittered(base, 0.5, nearMin, NEAR_MAX_MS, random), via: 'claim' }
  }
  const untilNear = etaMs !== undefined ? etaMs * (1 - 1 / distance) : undefined
  // Without an estimate, a far job looks again after a while that grows with its distance
  // and with the crowd of runners (12 s a level for 40 jobs; small plans look sooner).
  const perLevel = Math.min(12_000, Math.max(FAR_MIN_MS, assessment.runJobs * 300)) * scale
  const base = untilNear ?? perLevel * (distance - 1) * 1.5 ** pollsAtThisDistance
  return { delayMs: jittered(base, 0.4, farMin, FAR_MAX_MS, random), via: 'jobs' }
}

const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value))

/**
 * The delay within [min, max], stretched by up to `fraction` so runners that
 * polled together drift apart; stretching only upward keeps the floor a floor.
 */
function jittered(ms: number, fraction: number, min: number, max: number, random: Random): number {
  return Math.round(clamp(clamp(ms, min, max) * (1 + fraction * random()), min, max))
}
