import type { BackendClient } from '../backend/client.js'
import { BackendError } from '../backend/client.js'
import { checkNotDropped } from '../backend/dropped-run.js'
import { joinRun } from '../backend/session.js'
import type { JobRecord } from '../backend/types.js'
import { parseRunId } from '../common/attempt.js'
import { UserError, errorMessage } from '../common/errors.js'
import { realSleep, spread, type Random, type Sleep } from '../common/retry.js'
import type { Plan } from '../plan/model.js'
import { RERUN_ALL_JOBS } from '../common/error-messages.js'
import { carriedNote, readCarriedNote } from '../common/carried-note.js'
import {
  RECORD_PREFIX,
  downloadResultsRecords,
  listResultsRecords,
  type RecordRead
} from '../common/results-record.js'
import { TIGHT_LIMIT, type LearnedLimit } from './pace.js'
import type { JobResult } from './summary.js'

/**
 * Re-runs of a workflow run ("Re-run failed jobs", "Re-run job"). GitHub starts
 * only the matrix legs it re-runs and hands them the plan job's outputs of the
 * attempt in which it last ran, so the run id names an earlier attempt. A job
 * that failed there stays failed in that run, so this attempt works in a run of
 * its own, with the same plan, and carries every job that succeeded before into
 * it as a success (claimed and reported, never executed), so their dependents,
 * whose runners are the ones GitHub did start, can run.
 *
 * Who carries: the runner whose create made this attempt's run (the first one
 * there) carries every job in DAG order, paced, while the others wait for their
 * dependencies as usual. A runner that loses a claim while carrying stops: the
 * other carrier is active. Every waiting runner also looks now and then: when no
 * carried job moves for 30 s (the first runner died, or its create answer was
 * lost), it carries the rest itself. A claim is atomic, so a job is carried by exactly one
 * runner and never both carried and executed.
 *
 * A runner's own job is always executed, even when it succeeded before: GitHub
 * started this runner for it, so the user asked for it again ("Re-run job").
 */

/**
 * Between two carried jobs (a claim and an update each), at least: 10 requests/s, a third of
 * the 30/s limit of the 2026-05-08 build, where the limit is known ample. Each 429 doubles the
 * gap, and each job carried without one narrows it again, never below the starting gap (see pass).
 */
export const CARRY_INTERVAL_MS = 200
/**
 * Where the limit is tight (5/s: a hint or a 429 said so, or nothing said otherwise), a carrier
 * starts at 2 requests per 800 ms, half the refill, and leaves the other half to the runners whose
 * jobs run again. Starting at 10/s, a carrier emptied the bucket of a 10-runner re-run within
 * 2 s, and the others' requests met it empty: 6 refusals in a row at the server.
 */
export const TIGHT_CARRY_INTERVAL_MS = 800
/** A carrier refused with 429 slows down, up to this gap between jobs. */
const CARRY_INTERVAL_MAX_MS = 3_000
/** When a waiting runner first checks that carrying is under way (at the earliest). */
export const WATCH_FIRST_LOOK_MS = 10_000
/** Startup requests of a crowd of re-run runners are spread over up to this long, by plan size. */
const STARTUP_SPREAD_MAX_MS = 3_000
/** Then how often, while it waits. */
export const WATCH_INTERVAL_MS = 15_000
/**
 * Nobody is carrying only when no carried job moved for this long, over two looks at least. A
 * carrier slowed by 429s on the 5/s build can take many seconds over one job (Retry-After, its
 * own doubling gap), longer than one look interval; judged on one interval, a waiting runner
 * started carrying beside it, split the work and drew more 429s.
 */
export const NOBODY_CARRYING_AFTER_MS = 2 * WATCH_INTERVAL_MS
/**
 * Waiting runners take their first look this far apart, by rank, so that when nobody carries
 * one of them takes it up and the next ones see it under way: several fallback carriers at
 * once drew bunched 429s.
 */
export const FALLBACK_STAGGER_MS = 2_000
/**
 * The runner that created this attempt's run claims its first carried job no sooner than this
 * after the create: a claim right after a create can see the backend's transient 404 ("Coordinator
 * not initialized"), and every 404 costs a request of the shared limit.
 */
export const CREATED_RUN_SETTLE_MS = 1_000
/** The backend's takeover window: a carrier that claimed and vanished holds a job this long. */
const TAKEOVER_WINDOW_MS = 300_000

interface Origin {
  /** The attempt in which the job was executed. */
  attempt: number
  runner: string
}

export interface RerunOptions {
  client: BackendClient
  plan: Plan
  /** The run id this runner was given (the plan job's output). */
  runId: string
  /** This workflow run's attempt. */
  attempt: number
  /** This workflow run's id (GITHUB_RUN_ID). */
  workflowRun?: string
  /** The jobs this runner was started for: executed, never carried by it (none for a pool worker). */
  targets: readonly string[]
  runnerId: string
  log: (message: string) => void
  warn: (message: string) => void
  /** The runner's cancel signal: ends any wait at once. */
  cancel?: AbortSignal
  sleep?: Sleep
  random?: Random
  now?: () => number
  /** The rate limit this runner learned (pace.ts): a carrier's pace. Default: the tight one. */
  limit?: Pick<LearnedLimit, 'scale'>
  /** The results record, read when the backend lacks an earlier run (tests inject these). */
  readRecords?: typeof listResultsRecords
  downloadRecords?: typeof downloadResultsRecords
}

/** Where this attempt works; `carrier` is null when nothing is carried (attempt 1, "Re-run all jobs"). */
export interface RerunPlan {
  runId: string
  carrier: Carrier | null
}

/**
 * Resolves the run this attempt works in. For a re-run it reads the earlier
 * attempts' runs (usually one request), then creates or joins this attempt's run.
 */
export async function prepareRerun(options: RerunOptions): Promise<RerunPlan> {
  const given = parseRunId(options.runId)
  // A plan-action id of another workflow run was passed in on purpose: use it as it is.
  const otherWorkflowRun =
    given.workflowRun !== undefined &&
    options.workflowRun !== undefined &&
    given.workflowRun !== options.workflowRun
  if (given.attempt >= options.attempt || otherWorkflowRun)
    return { runId: options.runId, carrier: null }
  const runId = given.forAttempt(options.attempt)
  // Every re-run runner starts with the same two requests: spread the crowd so it fits the burst.
  const startupWindowMs = Math.min(STARTUP_SPREAD_MAX_MS, options.plan.order.length * 100)
  const startupEnds = Date.now() + startupWindowMs
  await (options.sleep ?? realSleep)(
    Math.round((options.random ?? Math.random)() * startupWindowMs)
  )
  const { origins, source } = await readEarlierAttempts(options, given)
  options.log(
    `Attempt ${options.attempt} re-runs run ${options.runId} (attempt ${given.attempt}): working in run ${runId}. ` +
      `${origins.size} job(s) succeeded before (read from ${source}) and are carried over, not run again.`
  )
  for (const target of options.targets) {
    const origin = origins.get(target)
    if (origin)
      options.log(
        `${target} succeeded in attempt ${origin.attempt}, but this runner was started for it again ("Re-run job"): it runs again.`
      )
  }
  const { created } = await joinRun(options.client, options.plan, runId)
  const carryFrom = created
    ? Math.max(startupEnds, Date.now() + CREATED_RUN_SETTLE_MS)
    : startupEnds
  return { runId, carrier: new Carrier(options, runId, origins, created, carryFrom) }
}

/**
 * The jobs that succeeded in an earlier attempt, and where they ran. The newest
 * earlier run decides each job it finished; a job it never finished (a carrier
 * that stopped halfway) is looked up in the run before it. An earlier run the
 * backend no longer holds (deleted about 24 h after it ended) is read from the
 * results record its runners kept on GitHub's side (src/common/results-record.ts).
 */
async function readEarlierAttempts(
  options: RerunOptions,
  given: ReturnType<typeof parseRunId>
): Promise<{ origins: Map<string, Origin>; source: string }> {
  const decided = new Map<string, { status: 'success' | 'failed'; origin: Origin }>()
  const found: string[] = []
  const missing: string[] = []
  const decide = (jobId: string, status: 'success' | 'failed', origin: Origin) => {
    if (!decided.has(jobId)) decided.set(jobId, { status, origin })
  }
  const earlier: string[] = []
  for (let attempt = options.attempt - 1; attempt >= given.attempt; attempt--)
    earlier.push(given.forAttempt(attempt))
  // Listed once, and only when the backend lacks a run: one GitHub request answers every attempt.
  let records: RecordRead | undefined
  // Carried in a recorded attempt: the attempt that executed it (read next) names where it ran.
  const carriedIn = new Map<string, Origin>()
  for (const [index, runId] of earlier.entries()) {
    const attempt = options.attempt - 1 - index
    const jobs = await readRun(options.client, runId)
    if (jobs) {
      checkSamePlan(options.plan, runId, jobs)
      found.push(runId)
      for (const job of jobs) {
        if (job.status !== 'success' && job.status !== 'failed') continue
        const carried = job.status === 'success' ? readCarriedNote(job.lastError) : undefined
        decide(
          job.jobId,
          job.status,
          carried?.attempt !== undefined
            ? { attempt: carried.attempt, runner: carried.runner ?? 'unknown' }
            : { attempt, runner: job.runnerId ?? 'unknown' }
        )
      }
    } else {
      records ??= await (options.readRecords ?? listResultsRecords)(earlier, options.plan)
      const own = records.ok ? records.records.filter(r => r.runId === runId) : []
      if (!own.length) {
        missing.push(runId)
        continue
      }
      found.push(`the results record of ${runId}`)
      const unnamed = own.filter(r => !r.succeeded)
      for (const record of own) {
        for (const id of record.succeeded ?? [])
          decide(id, 'success', { attempt, runner: record.runner })
        for (const id of record.failed ?? [])
          decide(id, 'failed', { attempt, runner: record.runner })
        for (const id of record.carried ?? [])
          if (!carriedIn.has(id)) carriedIn.set(id, { attempt, runner: record.runner })
      }
      if (unnamed.length) {
        const read = await (options.downloadRecords ?? downloadResultsRecords)(
          unnamed,
          options.plan.id
        )
        for (const record of read) {
          for (const job of record.jobs) {
            if (job.status === 'success' || job.status === 'carried')
              decide(job.jobId, 'success', { attempt: job.attempt, runner: job.runner })
            else if (job.status === 'failed')
              decide(job.jobId, 'failed', { attempt: job.attempt, runner: job.runner })
          }
        }
      }
    }
    if (decided.size === options.plan.order.length) break
  }
  // Its executing attempt's record is gone too: it still succeeded, so it is carried again.
  for (const [id, origin] of carriedIn) decide(id, 'success', origin)
  if (!found.length) {
    const gone = `The run of the earlier attempt (${missing.join(', ')}) is gone from the backend (ended runs are deleted after about 24 hours)`
    throw new UserError(
      records && !records.ok
        ? `${gone}, and its results record cannot be read (${records.problem}): re-run again once it can be, or ${RERUN_ALL_JOBS}.`
        : `${gone}, and no results record of it is left in this workflow run (its '${RECORD_PREFIX}*' artifacts were deleted or expired), so nothing can be carried over: ${RERUN_ALL_JOBS}.`
    )
  }
  const origins = new Map<string, Origin>()
  for (const job of options.plan.order) {
    const entry = decided.get(job.id)
    if (entry?.status === 'success') origins.set(job.id, entry.origin)
  }
  return { origins, source: found.join(' and ') }
}

/** An earlier run's jobs, or undefined when the backend no longer has it. */
async function readRun(client: BackendClient, runId: string): Promise<JobRecord[] | undefined> {
  try {
    const jobs = await client.listJobs(runId)
    // The live service answers an unknown run's job list with 200 and no jobs.
    return jobs.length ? jobs : undefined
  } catch (error) {
    if (error instanceof BackendError && error.status === 404) return undefined
    throw new UserError(
      `Cannot read the earlier attempt's run ${runId} (${error instanceof BackendError ? error.describe() : errorMessage(error)}), so what succeeded there cannot be carried over: re-run again, or use "Re-run all jobs".`
    )
  }
}

function checkSamePlan(plan: Plan, runId: string, jobs: readonly JobRecord[]): void {
  const stray = jobs.find(job => !plan.byId.has(job.jobId))
  if (stray || jobs.length !== plan.order.length) {
    throw new UserError(
      `The earlier attempt's run ${runId} holds other jobs than plan ${plan.id} (${stray ? `e.g. ${stray.jobId}` : `${jobs.length} instead of ${plan.order.length}`}), so nothing can be carried over from it: use "Re-run all jobs", and pass the plan job's 'run-id' output unchanged.`
    )
  }
}

/** Carries the earlier successes into this attempt's run (see the top of this file). */
export class Carrier {
  /** The jobs this runner carried, for its summary and job-results. */
  readonly carried: JobResult[] = []
  /** Jobs this runner may carry: earlier successes, not its own. */
  private readonly candidates: string[]
  private readonly view = new Map<string, JobRecord['status']>()
  private readonly sleep: Sleep
  private readonly stopWatch = new AbortController()
  private watching: Promise<void> | undefined
  /** Candidates a vanished carrier holds: the backend lets a claim take them over. */
  private readonly staleRunning = new Set<string>()
  /** Whether this runner's latest look left candidates it did not see finished. */
  private unresolved = false

  constructor(
    private readonly options: RerunOptions,
    readonly runId: string,
    readonly origins: ReadonlyMap<string, Origin>,
    /** This runner's create made the run: it carries first. */
    readonly first: boolean,
    /**
     * When the other runners' first requests should be done (epoch ms); for the run's creator, also
     * when the new run has settled (CREATED_RUN_SETTLE_MS).
     */
    private readonly startupEnds = 0
  ) {
    this.candidates = options.plan.order
      .map(job => job.id)
      .filter(id => origins.has(id) && !options.targets.includes(id))
    this.sleep = options.sleep ?? realSleep
  }

  /**
   * Carries what it can when this runner made the run, then watches while the
   * targets run. Another runner holds off about as long as the first one needs
   * to carry its jobs' ancestors: waiting for them it could only spend the rate
   * limit the carrying needs.
   */
  async start(): Promise<void> {
    if (!this.candidates.length) return
    if (!this.first) {
      // The first runner carries in DAG order: this runner's last ancestor comes at about this place.
      const ahead = this.candidates.findLastIndex(id => this.isAncestorOfTarget(id)) + 1
      const holdOffMs = ahead
        ? Math.max(0, this.startupEnds - Date.now()) +
          spread(ahead * (this.carryIntervalMs() + 100), 0.25, this.options.random) +
          1_000
        : 0
      if (holdOffMs) {
        this.options.log(
          `Waiting ${(holdOffMs / 1000).toFixed(1)}s while the earlier successes upstream of this runner's job(s) are carried over.`
        )
        await this.pause(holdOffMs)
      }
      this.watching = this.watch(
        Math.max(WATCH_FIRST_LOOK_MS, holdOffMs + 5_000) + this.rank() * FALLBACK_STAGGER_MS
      )
      return
    }
    this.options.log(
      `This runner made run ${this.runId}: carrying over ${this.candidates.length} job(s) in DAG order.`
    )
    // The other runners' first requests come first (they fill the burst by themselves), and the
    // new run settles.
    await this.pause(Math.max(0, this.startupEnds - Date.now()))
    try {
      await this.pass()
    } catch (error) {
      // The waiting runners notice that nothing moves and carry the rest.
      this.options.warn(`Carrying over earlier successes stopped: ${errorMessage(error)}`)
      this.unresolved = true
    }
    if (!this.unresolved) return
    this.watching = this.watch(WATCH_FIRST_LOOK_MS)
  }

  /**
   * Stops watching, then (unless the runner was cancelled) carries what this
   * runner's own results made carriable, or what its last look left over.
   */
  async finish(carry = true): Promise<void> {
    this.stopWatch.abort()
    await this.watching
    if (!carry) return
    const downstream = this.candidates.some(id => this.dependsOnTarget(id))
    if (!downstream && !this.unresolved) return
    try {
      await this.look()
      if (this.runnableCandidates().length) await this.pass()
    } catch (error) {
      this.options.warn(`Could not finish carrying over earlier successes: ${errorMessage(error)}`)
    }
  }

  /** Whether this job is carried over (by this runner or another), never executed in this attempt. */
  carries(jobId: string): boolean {
    return this.candidates.includes(jobId)
  }

  /** Marks targets that another runner carried into this run, for the summary. */
  annotate(results: JobResult[]): void {
    for (const result of results) {
      const origin = this.origins.get(result.jobId)
      if (origin && result.status === 'already-complete') {
        result.carriedFrom = origin.attempt
        result.detail = carriedNote(origin)
      }
    }
  }

  /**
   * This runner's place among the re-run's runners: where its first own job comes among the
   * jobs not carried over (the legs GitHub started again). Duplicate legs share a place.
   */
  private rank(): number {
    const first = this.options.targets[0]
    if (first === undefined) return 0
    const legs = this.options.plan.order.map(job => job.id).filter(id => !this.origins.has(id))
    return Math.max(0, legs.indexOf(first))
  }

  private async watch(firstLookMs: number): Promise<void> {
    const now = this.options.now ?? Date.now
    let lastMoved: number | undefined
    let lastMovedAt = now()
    for (let looks = 0; ; looks++) {
      // The first three looks keep the rank's place (a little jitter only): the third is the
      // first that can decide (NOBODY_CARRYING_AFTER_MS). Later ones spread wide.
      const wait = looks ? WATCH_INTERVAL_MS : firstLookMs
      if (!(await this.pause(spread(wait, looks < 3 ? 0.1 : 0.5, this.options.random)))) return
      try {
        await this.look()
        if (!this.unresolved) return
        // No carried job claimed or finished for NOBODY_CARRYING_AFTER_MS: nobody is carrying.
        // Never judged on the first look alone: on a busy machine a live first runner may not
        // have claimed its first job yet, and carrying beside it only collides.
        const moved = this.candidates.filter(id => this.status(id) !== 'pending').length
        if (moved !== lastMoved) lastMovedAt = now()
        if (
          moved === lastMoved &&
          now() - lastMovedAt >= NOBODY_CARRYING_AFTER_MS &&
          this.runnableCandidates().length
        ) {
          this.options.log(
            'Nobody is carrying the earlier successes over: this runner carries them.'
          )
          await this.pass()
        }
        lastMoved = this.candidates.filter(id => this.status(id) !== 'pending').length
      } catch (error) {
        // The targets' own waits still work; the next look tries again.
        this.options.warn(`Checking the carried-over jobs failed: ${errorMessage(error)}`)
      }
    }
  }

  /** The gap between two carried jobs: TIGHT_CARRY_INTERVAL_MS, shrunk where the limit is ampler. */
  private carryIntervalMs(): number {
    const scale = (this.options.limit ?? TIGHT_LIMIT).scale()
    return Math.max(CARRY_INTERVAL_MS, Math.round(TIGHT_CARRY_INTERVAL_MS * scale))
  }

  /** Sleeps unless finish() was called or the runner was cancelled; false when so. */
  private pause(ms: number): Promise<boolean> {
    const signals = [this.stopWatch.signal, this.options.cancel].filter(s => s !== undefined)
    const stopped = () => signals.some(s => s.aborted)
    if (stopped()) return Promise.resolve(false)
    return new Promise(resolve => {
      const done = (value: boolean) => {
        for (const s of signals) s.removeEventListener('abort', onAbort)
        resolve(value)
      }
      const onAbort = () => done(false)
      for (const s of signals) s.addEventListener('abort', onAbort)
      this.sleep(ms).then(() => done(!stopped()))
    })
  }

  /** Reads this attempt's run: one request. */
  private async look(): Promise<void> {
    const now = Date.now()
    this.staleRunning.clear()
    for (const job of await this.options.client.listJobs(this.runId)) {
      this.view.set(job.jobId, job.status)
      const heartbeat = job.heartbeatAt ? Date.parse(job.heartbeatAt) : 0
      if (job.status === 'running' && now - heartbeat > TAKEOVER_WINDOW_MS)
        this.staleRunning.add(job.jobId)
    }
    this.unresolved = this.candidates.some(
      id => this.status(id) === 'pending' || this.staleRunning.has(id)
    )
  }

  private status(id: string): JobRecord['status'] {
    return this.view.get(id) ?? 'pending'
  }

  private runnableCandidates(): string[] {
    return this.candidates.filter(
      id =>
        (this.status(id) === 'pending' || this.staleRunning.has(id)) &&
        (this.options.plan.byId.get(id)?.dependsOn ?? []).every(
          dep => this.status(dep) === 'success'
        )
    )
  }

  /**
   * One carrying pass in DAG order over the candidates this runner's view says
   * are runnable. Stops at the first claim another runner won.
   */
  private async pass(): Promise<void> {
    const { client, runnerId } = this.options
    let sent = false
    const least = this.carryIntervalMs()
    let interval = least
    let refused = client.stats.rateLimited
    for (const id of this.candidates) {
      if (!this.runnableCandidates().includes(id)) continue
      if (sent) {
        // Refusals mean other runners need the shared limit too: leave them more of it.
        interval =
          client.stats.rateLimited > refused
            ? Math.min(CARRY_INTERVAL_MAX_MS, interval * 2)
            : Math.max(least, interval / 1.5)
        refused = client.stats.rateLimited
        await this.sleep(spread(interval, 0.2, this.options.random))
      }
      sent = true
      const origin = this.origins.get(id)!
      const claim = await this.claim(id)
      if (!claim.claimed) {
        if (claim.depsBlocked) {
          // A dependency executed again in this attempt and failed: this job stays pending.
          this.view.set(id, 'skipped')
          continue
        }
        this.options.log(
          `${id} is ${claim.currentStatus}${claim.depsWaiting ? ' (dependencies not done)' : ''} in run ${this.runId}: another runner is carrying; leaving it to that runner.`
        )
        this.unresolved = true
        return
      }
      try {
        await client.update(this.runId, id, runnerId, 'success', carriedNote(origin))
      } catch (error) {
        if (error instanceof BackendError && error.status === 400) {
          this.options.warn(`${id} could not be carried over: ${error.message}`)
          this.view.set(id, 'running')
          continue
        }
        throw error
      }
      this.view.set(id, 'success')
      this.carried.push({
        jobId: id,
        status: 'carried',
        durationMs: 0,
        waitMs: 0,
        attempts: 1,
        tookOver: Boolean(claim.takeover),
        carriedFrom: origin.attempt,
        detail: carriedNote(origin)
      })
      this.options.log(`${id}: ${carriedNote(origin)}.`)
    }
    this.unresolved = this.candidates.some(id => this.status(id) === 'pending')
  }

  /** Right after a run was created the backend may not know it for a moment (a transient 404). */
  private async claim(id: string) {
    let delayMs = 250
    for (let tries = 1; ; tries++) {
      try {
        return await this.options.client.claim(this.runId, id, this.options.runnerId)
      } catch (error) {
        const unknownRun =
          error instanceof BackendError &&
          error.status === 404 &&
          !/job not found/i.test(error.message)
        if (!unknownRun || tries >= 8) throw error
        if (tries === 1) {
          // A run the backend dropped to its copy must not be created again (it would start over).
          await checkNotDropped(this.options.client, this.runId)
          await joinRun(this.options.client, this.options.plan, this.runId)
        } else await this.sleep(spread(delayMs, 0.5, this.options.random))
        delayMs = Math.min(delayMs * 2, 4_000)
      }
    }
  }

  /** Whether a job sits upstream of one of this runner's own jobs. */
  private isAncestorOfTarget(id: string): boolean {
    return this.options.targets.some(target => this.upstreamOf(target).has(id))
  }

  private upstreamOf(jobId: string): Set<string> {
    const seen = new Set<string>()
    const stack = [...(this.options.plan.byId.get(jobId)?.dependsOn ?? [])]
    while (stack.length) {
      const dep = stack.pop()!
      if (seen.has(dep)) continue
      seen.add(dep)
      stack.push(...(this.options.plan.byId.get(dep)?.dependsOn ?? []))
    }
    return seen
  }

  /** Whether a job sits downstream of one of this runner's own jobs. */
  private dependsOnTarget(id: string): boolean {
    const upstream = this.upstreamOf(id)
    return this.options.targets.some(target => upstream.has(target))
  }
}
