import type { BackendClient } from '../backend/client.js'
import { BackendError } from '../backend/client.js'
import { RunDroppedError, readsLikeDroppedCopy } from '../backend/dropped-run.js'
import type { JobRecord } from '../backend/types.js'
import { UserError } from '../common/errors.js'
import { inline } from '../common/escape.js'
import { spread, type Random } from '../common/retry.js'
import { depthOf, type Plan } from '../plan/model.js'
import { assess, nextPoll, type WaitAssessment } from './schedule.js'
import { PASS_PLAN_OUTPUTS } from '../common/error-messages.js'
import { TIGHT_LIMIT, type LearnedLimit } from './pace.js'

/**
 * The claim loop: every row of the protocol's claim table, plus the wait for
 * dependencies. It never re-claims a job this runner owns (a claim cannot be
 * resumed) and never runs a job another live runner owns.
 */
export type Acquired =
  | { kind: 'claimed'; takeover: boolean }
  | {
      kind: 'finished'
      status: 'success' | 'failed'
      lastError: string | null
      mirrored: boolean
      /** Who ran it, as the backend says. */
      runnerId?: string | null
    }
  | { kind: 'skipped'; owner: string | null }
  | { kind: 'blocked'; upstream: JobRecord[] }

export interface AcquireContext {
  client: BackendClient
  plan: Plan
  runId: string
  runnerId: string
  onDuplicate: 'wait' | 'skip'
  dependencyTimeoutMs: number
  /** A running job whose heartbeat is older than this may have lost its runner: try to take it over. */
  staleHeartbeatMs: number
  /** Creates or joins the run; called when a claim finds it not yet initialised. */
  ensureRun: () => Promise<void>
  sleep: (ms: number) => Promise<void>
  now: () => number
  random?: Random
  log: (message: string) => void
  /** The rate limit learned from the answers so far (default: the tight one, 5/s). */
  limit?: Pick<LearnedLimit, 'scale'>
}

export interface AcquireStats {
  waitedMs: number
  polls: number
}

export async function acquireJob(
  ctx: AcquireContext,
  jobId: string,
  stats: AcquireStats = { waitedMs: 0, polls: 0 }
): Promise<Acquired> {
  const started = ctx.now()
  try {
    return await acquireLoop(ctx, jobId, stats)
  } finally {
    stats.waitedMs = ctx.now() - started
  }
}

async function acquireLoop(
  ctx: AcquireContext,
  jobId: string,
  stats: AcquireStats
): Promise<Acquired> {
  // The dependency timeout counts time without progress: it restarts whenever an
  // upstream job succeeds, so a deep DAG of long jobs is not cut off halfway.
  let deadline = ctx.now() + ctx.dependencyTimeoutMs
  let unfinishedAncestors = Infinity
  let pollsAtDistance = 0
  let hadEstimate = false
  let lastDistance = -1
  let assessment: WaitAssessment | undefined
  const limit = ctx.limit ?? TIGHT_LIMIT
  // A root job claims at once. A dependent cannot be runnable yet when every
  // runner starts together, so it looks at the run first, later the deeper it
  // sits in the DAG: the shared rate limit goes to the roots first.
  const depth = depthOf(ctx.plan, jobId)
  let via: 'claim' | 'jobs' = depth === 0 ? 'claim' : 'jobs'
  if (depth > 0) {
    await ctx.sleep(
      spread(firstLookDelayMs(depth, ctx.plan.order.length, limit.scale()), 0.5, ctx.random)
    )
  }
  for (;;) {
    if (via === 'claim') {
      const result = await claim(ctx, jobId)
      stats.polls++
      if (result.claimed) return { kind: 'claimed', takeover: Boolean(result.takeover) }
      switch (result.currentStatus) {
        case 'success':
        case 'failed': {
          const record = await ctx.client.jobStatus(ctx.runId, jobId)
          return {
            kind: 'finished',
            status: result.currentStatus,
            lastError: record.lastError,
            mirrored: false,
            runnerId: record.runnerId
          }
        }
        case 'skipped':
          return { kind: 'skipped', owner: null }
        case 'running':
          return duplicate(ctx, jobId, deadline)
      }
      if (result.depsBlocked) {
        const jobs = await ctx.client.listJobs(ctx.runId)
        return {
          kind: 'blocked',
          upstream: assess(ctx.plan, jobId, jobs, ctx.now()).failedUpstream
        }
      }
      // Our view said every dependency succeeded but the backend disagrees: look again, never spin.
      if (assessment?.distance === 0) assessment = undefined
    }
    // Waiting for dependencies: look at the whole run when far away, else poll with claim.
    if (via === 'jobs' || !assessment || pollsAtDistance % 6 === 5) {
      const jobs = await listJobs(ctx)
      stats.polls++
      const own = jobs.find(job => job.jobId === jobId)
      if (!own) throw notInRun(ctx, jobId)
      if (own.status === 'success' || own.status === 'failed') {
        return {
          kind: 'finished',
          status: own.status,
          lastError: own.lastError,
          mirrored: false,
          runnerId: own.runnerId
        }
      }
      // The backend's read-only copy of a dropped run never changes: waiting would be in vain.
      if (readsLikeDroppedCopy(ctx.plan, jobs)) throw new RunDroppedError(ctx.runId, jobs)
      if (own.status === 'running') return duplicate(ctx, jobId, deadline)
      assessment = assess(ctx.plan, jobId, jobs, ctx.now())
      if (assessment.failedUpstream.length)
        return { kind: 'blocked', upstream: assessment.failedUpstream }
      if (assessment.unfinishedAncestors < unfinishedAncestors) {
        unfinishedAncestors = assessment.unfinishedAncestors
        deadline = ctx.now() + ctx.dependencyTimeoutMs
      }
      // The backoff counts polls since the distance changed, or since an estimate of when the
      // dependencies end first came: polls made without one (at the crowd's share of the
      // limit, many where it is ample) are no overrun of it. Counting them turned the first
      // poll after a late estimate into a 20 s sleep on the 30/s build.
      const estimated = assessment.etaMs !== undefined
      if (assessment.distance !== lastDistance || (estimated && !hadEstimate)) {
        pollsAtDistance = 0
        lastDistance = assessment.distance
      }
      hadEstimate = estimated
    }
    if (ctx.now() >= deadline) {
      throw new UserError(
        `Gave up waiting for the dependencies of ${inline(jobId)}: no upstream job finished within the dependency-timeout; still not done: ${describeDeps(assessment.pendingDeps, ctx.now())}. ` +
          "Check those jobs' runners, or raise 'dependency-timeout'."
      )
    }
    const next = nextPoll(assessment, pollsAtDistance, ctx.random, limit.scale())
    pollsAtDistance++
    via = next.via
    const delay = Math.min(next.delayMs, Math.max(0, deadline - ctx.now()))
    if (delay > 0) {
      ctx.log(
        `Waiting for ${inline(jobId)}: ${describeDeps(assessment.pendingDeps, ctx.now())}; next check in ${(delay / 1000).toFixed(1)}s.`
      )
      await ctx.sleep(delay)
    }
  }
}

/**
 * When a dependent first looks at the run: a job one level down soon (its
 * dependencies may be quick), deeper ones later, leaving the rate limit to the
 * jobs about to run while nothing has finished yet. The spacing grows with the
 * number of runners sharing the limit: a small plan has requests to spare; and
 * shrinks by `scale` (LearnedLimit) where the limit is ampler than 5/s.
 */
export function firstLookDelayMs(depth: number, planJobs: number, scale = 1): number {
  const perLevel = depth <= 1 ? crowdScaled(planJobs, 50, 2_000) : crowdScaled(planJobs, 100, 4_000)
  return depth * perLevel * scale
}

/** planJobs × msPerJob, between 500 ms and max. */
export function crowdScaled(planJobs: number, msPerJob: number, max: number): number {
  return Math.min(max, Math.max(500, planJobs * msPerJob))
}

/**
 * How long a run this runner has just created or joined may still look unknown:
 * the service answers claims on a run created moments ago with a transient 404
 * (orun's own client allows 2 minutes for it).
 */
export const RUN_VISIBLE_GRACE_MS = 120_000

/**
 * Retries `call` while the run looks unknown (`unknown` says so of an answer or an
 * error), after creating or joining it once; a short backoff, bounded by the grace.
 */
export async function onceRunVisible<T>(
  ctx: Pick<AcquireContext, 'ensureRun' | 'now' | 'sleep' | 'random' | 'runId'>,
  call: () => Promise<T>,
  unknown: (answer: { value?: T; error?: unknown }) => boolean
): Promise<T> {
  let joined = false
  let delayMs = 250
  let giveUpAt = Infinity
  for (;;) {
    let answer: { value?: T; error?: unknown }
    try {
      answer = { value: await call() }
    } catch (error) {
      answer = { error }
    }
    if (!unknown(answer)) {
      if ('error' in answer) throw answer.error
      return answer.value as T
    }
    if (!joined) {
      await ctx.ensureRun()
      joined = true
      giveUpAt = ctx.now() + RUN_VISIBLE_GRACE_MS
      continue
    }
    if (ctx.now() >= giveUpAt) {
      throw new UserError(
        `The backend still does not know run ${ctx.runId} ${RUN_VISIBLE_GRACE_MS / 1000} s after this runner created or joined it. ` +
          "Check that every job of the workflow uses the same 'backend-url', then re-run the job."
      )
    }
    await ctx.sleep(spread(delayMs, 0.5, ctx.random))
    delayMs = Math.min(delayMs * 2, 4_000)
  }
}

export const isRunUnknown = (error: unknown) =>
  error instanceof BackendError && error.status === 404 && !/job not found/i.test(error.message)

/** The run's jobs; a run nobody created yet (an empty list, as the service answers) is created or joined first. */
async function listJobs(ctx: AcquireContext): Promise<JobRecord[]> {
  return onceRunVisible(
    ctx,
    () => ctx.client.listJobs(ctx.runId),
    ({ value, error }) => (error ? isRunUnknown(error) : value!.length === 0)
  )
}

/** Another runner owns the job: skip it, or mirror its result. */
async function duplicate(ctx: AcquireContext, jobId: string, deadline: number): Promise<Acquired> {
  if (ctx.onDuplicate === 'wait') return mirror(ctx, jobId, deadline)
  const record = await ctx.client.jobStatus(ctx.runId, jobId)
  return { kind: 'skipped', owner: record.runnerId }
}

function notInRun(ctx: AcquireContext, jobId: string): UserError {
  return new UserError(
    `The backend's run ${ctx.runId} has no job ${jobId}: the run was created from another plan. ${PASS_PLAN_OUTPUTS}`
  )
}

/**
 * Claims, creating or joining the run first when the backend does not know it yet. A run the
 * backend dropped to its copy still tells this job's outcome when the job had finished.
 */
async function claim(ctx: AcquireContext, jobId: string) {
  try {
    return await onceRunVisible(
      ctx,
      () => ctx.client.claim(ctx.runId, jobId, ctx.runnerId),
      ({ error }) => isRunUnknown(error)
    )
  } catch (error) {
    if (error instanceof RunDroppedError) {
      const own = error.jobs.find(job => job.jobId === jobId)
      if (own?.status === 'success' || own?.status === 'failed') {
        return { claimed: false as const, currentStatus: own.status }
      }
    }
    if (error instanceof BackendError && error.status === 404) throw notInRun(ctx, jobId)
    throw error
  }
}

/**
 * Another runner owns the job (a duplicate matrix entry): wait for its result
 * and mirror it. When its heartbeat goes stale its runner may be gone, so try a
 * claim, which the backend turns into a takeover once the window has passed.
 */
async function mirror(ctx: AcquireContext, jobId: string, waitUntil: number): Promise<Acquired> {
  let deadline = waitUntil
  ctx.log(`${inline(jobId)} is already running on another runner; mirroring its result.`)
  for (let polls = 0; ; polls++) {
    const record = await ctx.client.jobStatus(ctx.runId, jobId)
    if (record.status === 'success' || record.status === 'failed') {
      return {
        kind: 'finished',
        status: record.status,
        lastError: record.lastError,
        mirrored: true
      }
    }
    const heartbeatAge = record.heartbeatAt ? ctx.now() - Date.parse(record.heartbeatAt) : Infinity
    if (record.status !== 'running' || heartbeatAge > ctx.staleHeartbeatMs) {
      const result = await claim(ctx, jobId)
      if (result.claimed) return { kind: 'claimed', takeover: Boolean(result.takeover) }
    } else {
      // A live owner is progress: a long job is waited for as long as it heartbeats.
      deadline = Math.max(deadline, ctx.now() + ctx.dependencyTimeoutMs)
    }
    if (ctx.now() >= deadline) {
      throw new UserError(
        `Gave up waiting for ${jobId}: runner ${record.runnerId ?? 'unknown'} owns it but has not heartbeated for the dependency-timeout. Raise 'dependency-timeout', or use 'on-duplicate: skip'.`
      )
    }
    const running = record.startedAt ? ctx.now() - Date.parse(record.startedAt) : 0
    await ctx.sleep(spread(Math.min(30_000, Math.max(2_000, running / 4)), 0.2, ctx.random))
  }
}

export function describeDeps(deps: readonly JobRecord[], now: number): string {
  if (!deps.length) return 'its dependencies to be marked done'
  return deps
    .map(dep =>
      dep.status === 'running' && dep.startedAt
        ? `${inline(dep.jobId)} (running ${Math.round((now - Date.parse(dep.startedAt)) / 1000)}s)`
        : `${inline(dep.jobId)} (${dep.status})`
    )
    .join(', ')
}
