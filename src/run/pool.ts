import { BackendClient, isCancelledCall } from '../backend/client.js'
import { RunDroppedError, readsLikeDroppedCopy } from '../backend/dropped-run.js'
import type { JobRecord } from '../backend/types.js'
import { UserError, errorMessage } from '../common/errors.js'
import type { Random } from '../common/retry.js'
import { MAX_MATRIX_JOBS, ancestorsOf, remainingPath, type Plan } from '../plan/model.js'
import { isRunUnknown, onceRunVisible } from './acquire.js'
import { Cancelled } from './cancel.js'
import { PACED_FINAL_FLUSH_MS, runJob, type JobContext } from './job.js'
import { LearnedLimit, Pacer, addStats, pacedClient } from './pace.js'
import { typicalDurationMs } from './schedule.js'
import { dropInFlightJob, trackInFlightJob } from './state.js'
import type { JobResult } from './summary.js'

/**
 * Pool mode: K identical workers, each repeatedly taking a runnable job of the
 * run (or of its environments/components slice) and running it exactly as a
 * matrix runner runs its one job. The claim is atomic, so any number of
 * workers, duplicate indexes included, run each job once.
 *
 * One worker's loop:
 * 1. read `runnable` (one small request for the whole run) and rank it: the
 *    job with the longest remaining path to the end of the DAG first, since
 *    that is what shortens the makespan;
 * 2. claim one (a lost race just means the next candidate), run it, repeat;
 * 3. with nothing to claim it is idle: it reads the run's jobs and either
 *    leaves (see `leaveReason`) or waits, polling less often the larger the
 *    pool, and sooner when a running job should be about to end.
 */

export interface PoolContext extends Omit<JobContext, 'jobId' | 'claimed'> {
  /** This worker's index (matrix.worker), from 1. */
  worker: number
  /** The jobs this pool works on: the whole plan, or an environments/components slice. */
  targets: readonly string[]
  sleep: (ms: number) => Promise<void>
  now: () => number
  random?: Random
  log: (message: string) => void
}

/**
 * Workers start this far apart by index, so a large pool's first requests fit the rate limit
 * (as for 5/s; a worker scales it by the limit it learns, as it does the idle share).
 */
export const START_STAGGER_MS = 150
/**
 * A worker's pause before its first request: by its index wrapped by the pool size (an index
 * above it shares a slot), or by the matrix limit when the size is unknown, so a large `worker`
 * value never sleeps for hours.
 */
export function startStaggerMs(worker: number, poolSize: number | undefined): number {
  return ((worker - 1) % (poolSize ?? MAX_MATRIX_JOBS)) * START_STAGGER_MS
}

/** An idle worker polls no sooner than its share of the rate limit: pool size × this. */
export const IDLE_SHARE_MS = 400
export const IDLE_MIN_MS = 1_000
export const IDLE_MAX_MS = 30_000
/** The least idle wait however ample the limit. */
export const IDLE_FLOOR_MS = 300
/**
 * The rate limit is what slows this worker while the pacer spaces its requests at least this
 * far apart (its share of a crowded limit)...
 */
export const SCARCE_GAP_MS = 1_000
/** ...or refused one of them this recently (a small pool's gap shrinks back quickly). */
export const SCARCE_WINDOW_MS = 5_000

/** Runs jobs until none is left for this worker; pushes each result as it ends. Returns why it left. */
export async function runPool(ctx: PoolContext, results: JobResult[]): Promise<string> {
  const pacer = new Pacer({ now: ctx.now, sleep: ctx.sleep })
  // A client of its own that leaves 429s to the pacer; its counts join the main client's at the end.
  const own = new BackendClient({
    baseUrl: ctx.inputs.backendUrl,
    tokens: ctx.tokens,
    log: ctx.log,
    maxRateLimitedAttempts: 1
  })
  const client = pacedClient(own, pacer, new Set(['claim', 'uploadLog']))
  const limit = new LearnedLimit(
    () => own.stats.rateLimited,
    () => own.stats.rateLimitBurst,
    ctx.limitHint
  )
  // Final log uploads still on their way while the worker goes on (see finalLogInBackground).
  const logUploads: Promise<void>[] = []
  const inBackground = (upload: Promise<void>) => {
    logUploads.push(
      upload.catch(error => ctx.log(`A final log upload failed: ${errorMessage(error)}`))
    )
  }
  try {
    return await poolLoop(ctx, results, client, pacer, limit, inBackground)
  } finally {
    await Promise.all(logUploads)
    addStats(ctx.client.stats, own.stats)
  }
}

async function poolLoop(
  ctx: PoolContext,
  results: JobResult[],
  client: BackendClient,
  pacer: Pacer,
  limit: LearnedLimit,
  finalLogInBackground: (upload: Promise<void>) => void
): Promise<string> {
  const slice = new Set(ctx.targets)
  const remaining = remainingPath(ctx.plan)
  const rank = ranking(ctx.plan, remaining)
  // Best first. Equally good jobs go to their owner first (see ownedBy), and once a race was
  // lost (other workers read the same list at the same time) they are dealt out by worker
  // index, so workers freed together spread instead of colliding. While the rate limit is
  // scarce, every list is old by the time its claims go out: see pickOrder.
  let crowded = false
  // Then requests, not the order, set the pace: spend them on work (claims, results, logs),
  // not on fresh looks at the list.
  const scarce = () =>
    pacer.gapMs >= SCARCE_GAP_MS ||
    (pacer.lastRefusedAt !== undefined && ctx.now() - pacer.lastRefusedAt < SCARCE_WINDOW_MS)
  const isOwn = ownedBy(ctx.plan, slice, ctx.worker, ctx.inputs.poolSize)
  const pickOrder = (ids: readonly string[]) => {
    const ranked = rank(ids.filter(id => slice.has(id)))
    if (scarce()) {
      // Own jobs first (nobody else tries them first), then the others in an order of this
      // worker's own, so workers with nothing of their own spread when they take others' jobs.
      const random = ctx.random ?? Math.random
      if (!isOwn) return shuffled(ranked, random)
      return [
        ...ranked.filter(isOwn),
        ...shuffled(
          ranked.filter(id => !isOwn(id)),
          random
        )
      ]
    }
    return crowded || isOwn ? dealt(ranked, ctx.worker, remaining, isOwn) : ranked
  }
  const staleMs = 3 * ctx.inputs.heartbeatIntervalMs
  const runId = ctx.inputs.runId
  let candidates: string[] = []
  let finished = -1
  let progressAt = ctx.now()
  let idlePolls = 0

  const run = async (jobId: string, takeover: boolean) => {
    idlePolls = 0
    progressAt = ctx.now()
    results.push(
      await runJob({
        ...ctx,
        client,
        jobId,
        claimed: { takeover },
        finalLogSpreadMs: 0,
        finalFlushMs: PACED_FINAL_FLUSH_MS,
        finalLogInBackground
      })
    )
  }
  // A run created moments ago (by the plan job, or by a worker just now) may still look unknown.
  const visible = {
    ensureRun: ctx.ensureRun,
    now: ctx.now,
    sleep: ctx.sleep,
    random: ctx.random,
    runId
  }
  /** Claims one job; false when another worker has it (or it cannot run any more). */
  const claim = async (
    jobId: string
  ): Promise<{ claimed: boolean; takeover: boolean; pending: boolean }> => {
    // Saved before the claim is sent, as a matrix runner does (job.ts): a worker killed before
    // the grant's answer leaves the job to its post step.
    trackInFlightJob(ctx.inFlight, { jobId, spoolFile: '', unconfirmed: true })
    let result
    try {
      result = await onceRunVisible(
        visible,
        () => client.claim(runId, jobId, ctx.runnerId),
        ({ error }) => isRunUnknown(error)
      )
    } catch (error) {
      if (!isCancelledCall(error)) dropInFlightJob(ctx.inFlight, jobId)
      throw error
    }
    if (!result.claimed) dropInFlightJob(ctx.inFlight, jobId)
    return result.claimed
      ? { claimed: true, takeover: Boolean(result.takeover), pending: false }
      : { claimed: false, takeover: false, pending: result.currentStatus === 'pending' }
  }
  const readRunnable = (): Promise<string[]> =>
    onceRunVisible(
      visible,
      () => client.runnable(runId),
      ({ error }) => isRunUnknown(error)
    )
  // An unknown run answers an empty job list.
  const readJobs = (): Promise<JobRecord[]> =>
    onceRunVisible(
      visible,
      () => client.listJobs(runId),
      ({ value, error }) =>
        error ? isRunUnknown(error) : !value!.length && ctx.plan.order.length > 0
    ).then(jobs => {
      // The backend's read-only copy of a dropped run never changes: waiting would be in vain.
      if (readsLikeDroppedCopy(ctx.plan, jobs)) throw new RunDroppedError(runId, jobs)
      return jobs
    })

  /**
   * Nothing known is claimable: one read of the run's jobs tells what can still run. Returns
   * why the worker leaves, or undefined once there is something to claim again.
   */
  const idle = async (): Promise<string | undefined> => {
    for (;;) {
      const jobs = await readJobs()
      const view = poolView(ctx.plan, slice, jobs, ctx.runnerId, ctx.now(), staleMs)
      if (view.finished !== finished) {
        finished = view.finished
        progressAt = ctx.now()
      }
      if (view.runnable.length) {
        candidates = pickOrder(view.runnable)
        return undefined
      }
      for (const jobId of view.stale) {
        // The backend hands the job over only once its owner's heartbeat is past the window.
        const claimed = await claim(jobId)
        if (claimed.claimed) {
          await run(jobId, claimed.takeover)
          return undefined
        }
      }
      const reason = leaveReason(view, ctx.worker)
      if (reason) return reason
      if (ctx.now() - progressAt >= ctx.inputs.dependencyTimeoutMs) {
        throw new UserError(
          `Pool worker ${ctx.worker} gave up: no job of run ${runId} finished within the dependency-timeout, and ${view.pendingLive} job(s) still wait on ${view.running.map(r => r.jobId).join(', ') || 'jobs outside this slice'}. ` +
            "Check the runners of those jobs, or raise 'dependency-timeout'."
        )
      }
      // A stale job is claimed again soon, without backing off: the backend hands it over only
      // once its window passed, and the 2026-05-08 build fails it at its next sweep instead.
      const delay = view.stale.length
        ? staleLookDelayMs(ctx.worker, ctx.random)
        : idleDelayMs(view, ctx.worker, idlePolls++, jobs, ctx.now(), ctx.random, limit.scale())
      ctx.log(
        `Worker ${ctx.worker} idle: ${view.pendingLive} job(s) wait on ${view.running.length} running; next look in ${(delay / 1000).toFixed(1)}s.`
      )
      await ctx.sleep(delay)
    }
  }

  await ctx.sleep(startStaggerMs(ctx.worker, ctx.inputs.poolSize) * limit.scale())
  for (;;) {
    if (ctx.cancel.aborted) throw new Cancelled()
    if (!candidates.length) {
      candidates = pickOrder(await readRunnable())
      if (!candidates.length) {
        const reason = await idle()
        if (reason) return reason
      }
      continue
    }
    const pick = candidates.shift()!
    const claimed = await claim(pick)
    if (!claimed.claimed) {
      // Lost the race: what this worker knows is out of date, so it looks again. A job still
      // waiting (the backend and the last read disagree) is left to the idle wait: no spin.
      crowded = true
      candidates = []
      if (claimed.pending) {
        const reason = await idle()
        if (reason) return reason
      }
      continue
    }
    crowded = false
    await run(pick, claimed.takeover)
    // While the rate limit is plentiful a fresh look finds the best job; once it is the
    // bottleneck, the rest of this worker's share of the last look is worth a claim first:
    // its own jobs (others rarely take them), or with no known pool size, all of it.
    if (!scarce()) candidates = []
    else if (isOwn) candidates = candidates.filter(isOwn)
  }
}

/**
 * Orders candidates best first: the longest remaining path (in jobs, down to
 * the end of the DAG: `remainingPath` in plan/model.ts), then the plan's
 * topological order. The plan action's `auto` simulates workers with this order.
 */
export function ranking(
  plan: Plan,
  remaining: ReadonlyMap<string, number> = remainingPath(plan)
): (ids: readonly string[]) => string[] {
  const position = new Map(plan.order.map((job, index) => [job.id, index]))
  return ids =>
    [...new Set(ids)]
      .filter(id => remaining.has(id))
      .sort((a, b) => remaining.get(b)! - remaining.get(a)! || position.get(a)! - position.get(b)!)
}

/**
 * Which jobs of the slice this worker owns, when the pool's size K is known:
 * the slice in plan order, dealt round-robin to workers 1..K (a level's jobs
 * spread over every worker). Each worker tries its own jobs first, so workers
 * reading the same list rarely claim the same job, and a worker can claim the
 * rest of its own share of a list without reading it again. Ownership is only
 * a preference: a job whose owner is busy, cancelled or missing is taken by any
 * worker with nothing of its own (the claim still decides). Duplicate indexes
 * share a share; an index above K wraps around.
 */
export function ownedBy(
  plan: Plan,
  slice: ReadonlySet<string>,
  worker: number,
  poolSize: number | undefined
): ((jobId: string) => boolean) | undefined {
  if (!poolSize || poolSize < 2) return undefined
  const mine = new Set<string>()
  const self = (worker - 1) % poolSize
  let index = 0
  for (const job of plan.order) {
    if (!slice.has(job.id)) continue
    if (index++ % poolSize === self) mine.add(job.id)
  }
  return id => mine.has(id)
}

/**
 * The candidates this worker claims, in order. Workers freed together read the
 * same list: if all took the first, all but one would lose the race and spend a
 * request each. Jobs with the same remaining path are equally good, so within
 * each such group this worker's own jobs come first, then the others from entry
 * (w - 1) mod the group's size: workers spread over equals, and a better group
 * still goes first.
 */
export function dealt(
  ranked: readonly string[],
  worker: number,
  remaining: ReadonlyMap<string, number>,
  isOwn: (jobId: string) => boolean = () => false
): string[] {
  const order: string[] = []
  for (let start = 0; start < ranked.length;) {
    let end = start
    while (end < ranked.length && remaining.get(ranked[end]) === remaining.get(ranked[start])) end++
    const group = ranked.slice(start, end)
    const others = group.filter(id => !isOwn(id))
    const offset = others.length ? (worker - 1) % others.length : 0
    order.push(...group.filter(isOwn), ...others.slice(offset), ...others.slice(0, offset))
    start = end
  }
  return order
}

/** A random order (Fisher-Yates). */
export function shuffled<T>(items: readonly T[], random: Random): T[] {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[copy[i], copy[j]] = [copy[j], copy[i]]
  }
  return copy
}

/** What an idle worker learns from one read of the run's jobs (its slice only). */
export interface PoolView {
  /** Pending jobs whose dependencies all succeeded. */
  runnable: string[]
  /** Pending jobs with no failed ancestor: they can still become runnable. */
  pendingLive: number
  /** The most pending live jobs on one level of what remains: the parallelism still needed. */
  width: number
  /** Running jobs whose owner heartbeats: each owner is a live worker, free when its job ends. */
  running: JobRecord[]
  /** Distinct live owners other than this worker. */
  busyOthers: number
  /** Running jobs whose owner stopped heartbeating: to take over. */
  stale: string[]
  /** Jobs of the whole run that succeeded or failed: progress. */
  finished: number
}

export function poolView(
  plan: Plan,
  slice: ReadonlySet<string>,
  jobs: readonly JobRecord[],
  runnerId: string,
  now: number,
  staleMs: number
): PoolView {
  const byId = new Map(jobs.map(job => [job.jobId, job]))
  const status = (id: string) => byId.get(id)?.status ?? 'pending'
  const deps = (id: string) => plan.byId.get(id)?.dependsOn ?? []
  const failed = new Set(jobs.filter(job => job.status === 'failed').map(job => job.jobId))
  const inSlice = jobs.filter(job => slice.has(job.jobId))
  const live = inSlice.filter(
    job =>
      job.status === 'pending' &&
      (!failed.size || ![...ancestorsOf(plan, job.jobId)].some(id => failed.has(id)))
  )
  const running: JobRecord[] = []
  const stale: string[] = []
  for (const job of inSlice.filter(j => j.status === 'running')) {
    const beat = Date.parse(job.heartbeatAt ?? job.startedAt ?? '')
    if (Number.isFinite(beat) && now - beat > staleMs) stale.push(job.jobId)
    else running.push(job)
  }
  // Level of a pending job among what remains: 1 + the deepest unfinished dependency.
  const level = new Map<string, number>()
  const levelOf = (id: string): number => {
    const known = level.get(id)
    if (known !== undefined) return known
    const open = deps(id).filter(dep => status(dep) === 'pending')
    const value = 1 + Math.max(0, ...open.map(levelOf))
    level.set(id, value)
    return value
  }
  const perLevel = new Map<number, number>()
  for (const job of live)
    perLevel.set(levelOf(job.jobId), (perLevel.get(levelOf(job.jobId)) ?? 0) + 1)
  return {
    runnable: live
      .filter(job => deps(job.jobId).every(dep => status(dep) === 'success'))
      .map(j => j.jobId),
    pendingLive: live.length,
    width: Math.max(0, ...perLevel.values()),
    running,
    busyOthers: new Set(running.map(job => job.runnerId).filter(id => id !== runnerId)).size,
    stale,
    finished: jobs.filter(job => job.status === 'success' || job.status === 'failed').length
  }
}

/**
 * When an idle worker leaves (undefined: it stays). It is idle, so nothing of
 * its slice is runnable now: every job that can still run waits on a running one.
 * - Nothing left: no pending job can still become runnable (all finished, or
 *   blocked by a failed ancestor) and no job runs on another worker that might
 *   be lost (below).
 * - Enough others: live workers are busy right now (each is free the moment its
 *   job ends, and a job becomes runnable only when one ends), and either they
 *   are as many as the widest level of what remains, or this worker's index is
 *   above the number of jobs left (pending + running): workers 1..that many
 *   cover them. The index rule thins an idle crowd without any worker needing
 *   to see the others.
 * A busy worker may be lost at any moment, and its job looks alive (a fresh
 * heartbeat) until the takeover window passes, so a worker leaves while jobs run
 * elsewhere only when at least two other workers are busy: a lost one leaves a
 * live one, which stays when it is the last busy one besides the lost, until
 * every running job ended or went stale, and takes a stale one over.
 */
export function leaveReason(view: PoolView, worker: number): string | undefined {
  if (view.stale.length) return undefined
  if (!view.running.length)
    return view.pendingLive
      ? undefined
      : 'nothing left to take: every job of the pool finished or is blocked by a failed upstream job'
  // Jobs run elsewhere: one busy worker may be lost, so stay unless another is busy too.
  if (view.busyOthers < MIN_BUSY_TO_LEAVE) return undefined
  if (!view.pendingLive)
    return `nothing left to take: the ${view.running.length} job(s) still running have their own workers (${view.busyOthers} busy), and no other job can become runnable`
  if (view.width <= view.busyOthers)
    return `enough workers: the ${view.pendingLive} job(s) left need at most ${view.width} at once, and ${view.busyOthers} busy worker(s) take them as their jobs end`
  const left = view.pendingLive + view.running.length
  if (worker > left)
    return `enough workers: ${left} job(s) left (pending and running), and workers 1 to ${left} are there for them`
  return undefined
}

/** Busy other workers an idle worker needs to see before it leaves while jobs run: a lost one leaves a live one. */
export const MIN_BUSY_TO_LEAVE = 2

/** The next claim of a stale job: this worker's share of the rate limit, at least 1 s, no backoff. */
export function staleLookDelayMs(worker: number, random: Random = Math.random): number {
  const base = Math.min(IDLE_MAX_MS, Math.max(IDLE_MIN_MS, worker * IDLE_SHARE_MS))
  return Math.round(base * (1 + 0.3 * random()))
}

/**
 * How long an idle worker waits before it looks again: never less than its
 * share of the rate limit in a pool of the size it can see (its own index, or
 * the busy workers plus itself), and, when finished jobs give a typical
 * duration, until the first running job should end, else backing off. `scale`
 * (LearnedLimit) shrinks the share where the limit is ampler than 5/s.
 */
export function idleDelayMs(
  view: PoolView,
  worker: number,
  idlePolls: number,
  jobs: readonly JobRecord[],
  now: number,
  random: Random = Math.random,
  scale = 1
): number {
  const poolSize = Math.max(worker, view.busyOthers + 1)
  const share = poolSize * IDLE_SHARE_MS * scale
  const idleMin = Math.max(IDLE_FLOOR_MS, IDLE_MIN_MS * scale)
  const typical = typicalDurationMs(jobs)
  const soonest =
    typical === undefined
      ? undefined
      : Math.min(...view.running.map(job => typical - (now - Date.parse(job.startedAt ?? '')) || 0))
  const base =
    soonest !== undefined && Number.isFinite(soonest) && soonest > 0
      ? Math.max(share, soonest + 300 * scale)
      : share * 1.5 ** Math.min(idlePolls, 6)
  const clamped = Math.min(IDLE_MAX_MS, Math.max(idleMin, base))
  return Math.round(Math.min(IDLE_MAX_MS, clamped * (1 + 0.3 * random())))
}
