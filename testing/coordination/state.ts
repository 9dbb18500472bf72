/**
 * The coordinator's state machine: runs per namespace, their jobs, claims (dependency gate,
 * duplicate, takeover), heartbeats, updates with the run rollup, and stored logs, with the
 * service's eventual consistency (a new run's init lag, a new log's read lag), and what differs
 * between the two builds (../shared/spec/backend-protocol.md, "Two builds of the service"):
 * on 2026-05-08 each run's alarm sweeps silent runners and drops an idle run's live state to the
 * poorer database copy. On both, the cleanup deletes a run some time after it ended.
 */
import { randomUUID } from 'node:crypto'
import { ApiError } from './api-error.js'
import type { BackendBuild, RunPhase, StoredJobView } from './types.js'

/** The error the 2026-05-08 sweep writes on a job whose runner went silent. */
export const HEARTBEAT_TIMEOUT_ERROR = 'runner heartbeat timeout'

type JobStatus = 'pending' | 'running' | 'success' | 'failed' | 'skipped'

interface JobState {
  jobId: string
  component: string
  status: JobStatus
  deps: string[]
  runnerId: string | null
  startedAt: string | null
  finishedAt: string | null
  lastError: string | null
  heartbeatAt: string | null
  claims: number
}

interface RunState {
  runId: string
  namespaceId: string
  namespaceSlug: string
  planChecksum: string
  status: 'running' | 'completed' | 'failed' | 'cancelled'
  createdAt: string
  updatedAt: string
  finishedAt: string | null
  jobs: Map<string, JobState>
  /** Clock time from which routes other than create see the run. */
  visibleAt: number
  /** `copy`: the live state was dropped (2026-05-08); reads answer the database copy. */
  phase: 'live' | 'copy'
  /** Clock time of the last request that reached the live coordinator. */
  lastActivityAt: number
  /** Clock time of the run's next alarm (2026-05-08), null when it has none. */
  nextAlarmAt: number | null
  /** The copy's `expiresAt`, set when the live state is dropped. */
  expiresAt: string | null
  /** Clock time the cleanup deletes the run, set when it ends. */
  deleteAt: number | null
}

interface StoredLog {
  text: string
  /** What a read answers until visibleAt: the previous upload, or nothing. */
  previous: string | undefined
  visibleAt: number
}

/** The lags of the service, read on every use so tests can change them on a live server. */
export interface Consistency {
  initLagMs: () => number
  logVisibilityMs: () => number
}

/** What the build does with time: the alarm, the idle drop, the cleanup. */
export interface BuildRules {
  build: BackendBuild
  sweepPeriodMs: number
  idleDropMs: number
  deletionDelayMs: number
}

const DAY_MS = 24 * 60 * 60 * 1000

export const DEFAULT_BUILD_RULES: BuildRules = {
  build: '2026-05-02',
  sweepPeriodMs: 300_000,
  idleDropMs: 240_000,
  deletionDelayMs: DAY_MS
}

/** Who asks: the namespace is the repository id. */
export interface Caller {
  namespaceId: string
  namespaceSlug: string
}

/** A handler's answer: JSON (or text) with a status. */
export interface Reply {
  status: number
  headers?: Record<string, string>
  json?: unknown
  text?: string
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function publicJob(job: JobState): Record<string, unknown> {
  return {
    jobId: job.jobId,
    component: job.component,
    status: job.status,
    deps: job.deps,
    runnerId: job.runnerId,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    lastError: job.lastError,
    heartbeatAt: job.heartbeatAt
  }
}

/** Validates plan jobs the way the live coordinator does; its refusals surface as 500s. */
function buildJobs(rawJobs: unknown[]): Map<string, JobState> {
  const jobs = new Map<string, JobState>()
  for (const raw of rawJobs) {
    const jobId = isRecord(raw) ? raw.jobId : undefined
    if (typeof jobId !== 'string' || jobId.length === 0) {
      throw new ApiError(500, 'INTERNAL_ERROR', 'Every plan job must have a non-empty jobId')
    }
    if (jobs.has(jobId)) throw new ApiError(500, 'INTERNAL_ERROR', `Duplicate jobId: ${jobId}`)
    const record = raw as Record<string, unknown>
    const deps = record.deps ?? []
    if (!Array.isArray(deps) || deps.some(d => typeof d !== 'string')) {
      throw new ApiError(500, 'INTERNAL_ERROR', `Invalid deps in job "${jobId}"`)
    }
    jobs.set(jobId, {
      jobId,
      component: typeof record.component === 'string' ? record.component : '',
      status: 'pending',
      deps: deps as string[],
      runnerId: null,
      startedAt: null,
      finishedAt: null,
      lastError: null,
      heartbeatAt: null,
      claims: 0
    })
  }
  for (const job of jobs.values()) {
    for (const dep of job.deps) {
      if (!jobs.has(dep)) {
        throw new ApiError(
          500,
          'INTERNAL_ERROR',
          `Dependency "${dep}" in job "${job.jobId}" does not exist in plan`
        )
      }
    }
  }
  return jobs
}

const logKey = (ns: string, runId: string, jobId: string) => `${ns}/${runId}/${jobId}`

function requireJob(run: RunState, jobId: string): JobState {
  const job = run.jobs.get(jobId)
  if (!job) throw new ApiError(404, 'NOT_FOUND', 'Job not found')
  return job
}

export class RunStore {
  private readonly runs = new Map<string, Map<string, RunState>>() // namespace -> runId -> run
  // Log storage is apart from the runs: the service checks an upload against neither run nor job.
  private readonly logs = new Map<string, StoredLog>() // `${namespace}/${runId}/${jobId}` -> log

  /**
   * @param heartbeatTimeoutMs read on every claim, so tests can change it on a live server
   * @param clock the server's clock (epoch ms)
   */
  constructor(
    private readonly heartbeatTimeoutMs: () => number,
    private readonly clock: () => number = Date.now,
    private readonly consistency: Consistency = { initLagMs: () => 0, logVisibilityMs: () => 0 },
    private readonly rules: BuildRules = DEFAULT_BUILD_RULES
  ) {}

  private get sweeps(): boolean {
    return this.rules.build === '2026-05-08'
  }

  private nowIso(): string {
    return new Date(this.clock()).toISOString()
  }

  private runOf(namespaceId: string, runId: string): RunState | undefined {
    return this.runs.get(namespaceId)?.get(runId)
  }

  /**
   * A run as the read routes see it: not yet while it initialises; live or the database copy.
   * Reading the live coordinator keeps the run busy (not idle); reading the copy does not.
   */
  private visibleRun(namespaceId: string, runId: string): RunState | undefined {
    const run = this.runOf(namespaceId, runId)
    if (!run || this.clock() < run.visibleAt) return undefined
    if (run.phase === 'live') run.lastActivityAt = this.clock()
    return run
  }

  /** The live coordinator: the copy has none, so the job routes find the run uninitialised. */
  private requireCoordinator(namespaceId: string, runId: string): RunState {
    const run = this.visibleRun(namespaceId, runId)
    if (!run || run.phase !== 'live') {
      throw new ApiError(404, 'NOT_FOUND', 'Coordinator not initialized')
    }
    return run
  }

  createRun(caller: Caller, body: Record<string, unknown>): Reply {
    const plan = body.plan
    if (
      !isRecord(plan) ||
      typeof plan.checksum !== 'string' ||
      plan.checksum.length === 0 ||
      !Array.isArray(plan.jobs)
    ) {
      throw new ApiError(400, 'INVALID_REQUEST', 'Missing or invalid plan')
    }
    let runId: string
    if (body.runId === undefined) {
      runId = randomUUID()
    } else if (typeof body.runId === 'string' && body.runId.length > 0) {
      runId = body.runId
    } else {
      throw new ApiError(400, 'INVALID_REQUEST', 'runId must be a non-empty string')
    }
    const jobs = buildJobs(plan.jobs)
    const namespaceRuns = this.runs.get(caller.namespaceId) ?? new Map<string, RunState>()
    this.runs.set(caller.namespaceId, namespaceRuns)
    const existing = namespaceRuns.get(runId)
    const now = this.nowIso()
    // On the copy the coordinator is empty: a create starts the run over (the copy is overwritten).
    if (existing && existing.phase === 'live') {
      existing.lastActivityAt = this.clock()
      if (existing.planChecksum !== plan.checksum) {
        throw new ApiError(409, 'CONFLICT', 'Run already exists with a different plan checksum')
      }
      return { status: 200, json: { runId, status: 'running', createdAt: now } }
    }
    namespaceRuns.set(runId, {
      runId,
      namespaceId: caller.namespaceId,
      namespaceSlug: caller.namespaceSlug,
      planChecksum: plan.checksum,
      status: 'running',
      createdAt: now,
      updatedAt: now,
      finishedAt: null,
      jobs,
      visibleAt: this.clock() + this.consistency.initLagMs(),
      phase: 'live',
      lastActivityAt: this.clock(),
      nextAlarmAt: this.sweeps ? this.clock() + this.rules.sweepPeriodMs : null,
      expiresAt: null,
      deleteAt: null
    })
    return { status: 201, json: { runId, status: 'running', createdAt: now } }
  }

  getRun(ns: string, runId: string): Reply {
    const run = this.visibleRun(ns, runId)
    if (!run) throw new ApiError(404, 'NOT_FOUND', 'Run not found')
    const jobs = [...run.jobs.values()]
    return {
      status: 200,
      json: {
        run: {
          runId: run.runId,
          namespace: { namespaceId: run.namespaceId, namespaceSlug: run.namespaceSlug },
          status: run.status,
          planChecksum: run.planChecksum,
          createdAt: run.createdAt,
          updatedAt: run.updatedAt,
          finishedAt: run.finishedAt,
          ...(run.phase === 'copy' ? { expiresAt: run.expiresAt } : {}),
          jobTotal: jobs.length,
          jobDone: jobs.filter(j => j.status === 'success').length,
          jobFailed: jobs.filter(j => j.status === 'failed').length
        }
      }
    }
  }

  claim(ns: string, runId: string, jobId: string, runnerId: string): Reply {
    const run = this.requireCoordinator(ns, runId)
    const job = requireJob(run, jobId)
    const now = this.nowIso()
    // 2026-05-08: a dependent's claim sweeps silent runners first, so it may see depsBlocked.
    if (this.sweeps && job.status === 'pending' && job.deps.length > 0) this.sweepSilent(run)
    if (job.status === 'pending') {
      const depStatuses = job.deps.map(dep => run.jobs.get(dep)?.status)
      if (depStatuses.some(s => s === 'failed')) {
        return {
          status: 200,
          json: { claimed: false, currentStatus: 'pending', depsBlocked: true }
        }
      }
      if (depStatuses.some(s => s !== 'success')) {
        return {
          status: 200,
          json: { claimed: false, currentStatus: 'pending', depsWaiting: true }
        }
      }
      Object.assign(job, { status: 'running', runnerId, startedAt: now, heartbeatAt: now })
      job.claims += 1
      run.updatedAt = now
      return { status: 200, json: { claimed: true } }
    }
    if (job.status === 'running') {
      const age = job.heartbeatAt ? this.clock() - Date.parse(job.heartbeatAt) : Infinity
      if (age > this.heartbeatTimeoutMs()) {
        job.runnerId = runnerId
        job.heartbeatAt = now
        job.claims += 1
        run.updatedAt = now
        return { status: 200, json: { claimed: true, takeover: true } }
      }
      return { status: 200, json: { claimed: false, currentStatus: 'running' } }
    }
    return { status: 200, json: { claimed: false, currentStatus: job.status } }
  }

  heartbeat(ns: string, runId: string, jobId: string, runnerId: string): Reply {
    const run = this.requireCoordinator(ns, runId)
    const job = requireJob(run, jobId)
    if (job.status !== 'running' || job.runnerId !== runnerId) {
      return { status: 200, json: { ok: false, abort: true } }
    }
    job.heartbeatAt = this.nowIso()
    run.updatedAt = job.heartbeatAt
    return { status: 200, json: { ok: true } }
  }

  update(
    ns: string,
    runId: string,
    jobId: string,
    runnerId: string,
    status: 'success' | 'failed',
    error: unknown
  ): Reply {
    const run = this.requireCoordinator(ns, runId)
    const job = requireJob(run, jobId)
    if (job.status !== 'running') {
      throw new ApiError(400, 'INVALID_REQUEST', `Job is not running (current: ${job.status})`)
    }
    if (job.runnerId !== runnerId) {
      throw new ApiError(400, 'INVALID_REQUEST', 'Runner does not own this job')
    }
    const now = this.nowIso()
    job.status = status
    job.finishedAt = now
    job.lastError = typeof error === 'string' ? error : null
    this.rollUp(run, now)
    return { status: 200, json: { ok: true } }
  }

  /** The run status after a job ended; an ended run is due for the cleanup. */
  private rollUp(run: RunState, now: string): void {
    run.updatedAt = now
    const all = [...run.jobs.values()]
    if (all.every(j => j.status === 'success')) run.status = 'completed'
    else if (all.some(j => j.status === 'failed')) run.status = 'failed'
    if (run.status !== 'running' && run.finishedAt === null) run.finishedAt = now
    if (run.finishedAt !== null && run.deleteAt === null) {
      run.deleteAt = Date.parse(run.finishedAt) + this.rules.deletionDelayMs
    }
  }

  /** 2026-05-08: every running job silent for the heartbeat timeout ends `failed`. */
  private sweepSilent(run: RunState): void {
    const now = this.nowIso()
    let failed = false
    for (const job of run.jobs.values()) {
      if (job.status !== 'running') continue
      const age = job.heartbeatAt ? this.clock() - Date.parse(job.heartbeatAt) : Infinity
      if (age <= this.heartbeatTimeoutMs()) continue
      Object.assign(job, { status: 'failed', finishedAt: now, lastError: HEARTBEAT_TIMEOUT_ERROR })
      failed = true
    }
    if (failed) this.rollUp(run, now)
  }

  /**
   * 2026-05-08: the live state is dropped and reads answer the database copy, which kept each
   * job's last completed status (a claim that never completed reads `pending`), no dependencies
   * and no heartbeats; the run gains finishedAt and expiresAt and keeps its counts.
   */
  private dropToCopy(run: RunState): void {
    const now = this.clock()
    for (const job of run.jobs.values()) {
      if (job.status === 'running') {
        Object.assign(job, { status: 'pending', runnerId: null, startedAt: null })
      }
      job.deps = []
      job.heartbeatAt = null
    }
    run.phase = 'copy'
    run.nextAlarmAt = null
    run.finishedAt ??= new Date(now).toISOString()
    const finished = Date.parse(run.finishedAt)
    run.expiresAt = new Date(finished + DAY_MS).toISOString()
    run.deleteAt ??= finished + this.rules.deletionDelayMs
  }

  /** Runs the alarms (2026-05-08) and the cleanup (both builds) due by the clock. */
  tick(): void {
    const now = this.clock()
    for (const [namespaceId, namespaceRuns] of this.runs) {
      for (const run of [...namespaceRuns.values()]) {
        if (run.deleteAt !== null && now >= run.deleteAt) {
          this.deleteRun(run.runId, namespaceId, namespaceId)
          continue
        }
        if (run.phase !== 'live' || run.nextAlarmAt === null || now < run.nextAlarmAt) continue
        // The alarm re-arms from when it fired, as a Durable Object alarm does.
        run.nextAlarmAt = now + this.rules.sweepPeriodMs
        if (now - run.lastActivityAt >= this.rules.idleDropMs) this.dropToCopy(run)
        else this.sweepSilent(run)
      }
    }
  }

  /** The live state dropped now, as the alarm of an idle run does (2026-05-08 only). */
  dropLiveState(runId: string, namespace: string | undefined, defaultNamespace: string): boolean {
    if (!this.sweeps) throw new Error(`build ${this.rules.build} keeps runs live until deleted`)
    const run = this.findRun(runId, namespace, defaultNamespace)
    if (!run || run.phase !== 'live') return false
    this.dropToCopy(run)
    return true
  }

  runPhase(runId: string, namespace: string | undefined, defaultNamespace: string): RunPhase {
    return this.findRun(runId, namespace, defaultNamespace)?.phase ?? 'deleted'
  }

  runnable(ns: string, runId: string): Reply {
    const run = this.requireCoordinator(ns, runId)
    const jobs = [...run.jobs.values()]
      .filter(j => j.status === 'pending')
      .filter(j => j.deps.every(d => run.jobs.get(d)?.status === 'success'))
      .map(j => j.jobId)
    return { status: 200, json: { jobs } }
  }

  listJobs(ns: string, runId: string): Reply {
    // The service answers an unknown run with an empty list, not 404.
    const run = this.visibleRun(ns, runId)
    const jobs = [...(run?.jobs.values() ?? [])].map(j => ({ ...publicJob(j), logRef: null }))
    return { status: 200, json: { jobs } }
  }

  jobStatus(ns: string, runId: string, jobId: string): Reply {
    // A read route: the database copy answers it too.
    const run = this.visibleRun(ns, runId)
    if (!run) throw new ApiError(404, 'NOT_FOUND', 'Coordinator not initialized')
    return { status: 200, json: publicJob(requireJob(run, jobId)) }
  }

  uploadLog(ns: string, runId: string, jobId: string, log: string): Reply {
    const now = this.clock()
    const key = logKey(ns, runId, jobId)
    const before = this.logs.get(key)
    this.logs.set(key, {
      text: log,
      previous: before && now >= before.visibleAt ? before.text : before?.previous,
      visibleAt: now + this.consistency.logVisibilityMs()
    })
    return { status: 200, json: { ok: true, logRef: `${ns}/runs/${runId}/logs/${jobId}.log` } }
  }

  readLog(ns: string, runId: string, jobId: string): Reply {
    const stored = this.logs.get(logKey(ns, runId, jobId))
    const log = stored && (this.clock() >= stored.visibleAt ? stored.text : stored.previous)
    if (log === undefined) throw new ApiError(404, 'NOT_FOUND', 'Log not found')
    return { status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, text: log }
  }

  /** A run by id in the given namespace, else the default one, else any (tests rarely care). */
  private findRun(
    runId: string,
    namespace: string | undefined,
    defaultNamespace: string
  ): RunState | undefined {
    return namespace !== undefined
      ? this.runOf(namespace, runId)
      : (this.runOf(defaultNamespace, runId) ??
          [...this.runs.values()].find(m => m.has(runId))?.get(runId))
  }

  /** Read-only view for tests and the demo; without a namespace, the default one, then any. */
  jobsOf(runId: string, namespace: string | undefined, defaultNamespace: string): StoredJobView[] {
    const run = this.findRun(runId, namespace, defaultNamespace)
    if (!run) return []
    return [...run.jobs.values()].map(j => ({
      jobId: j.jobId,
      status: j.status,
      runnerId: j.runnerId,
      startedAt: j.startedAt,
      finishedAt: j.finishedAt,
      lastError: j.lastError,
      claims: j.claims
    }))
  }

  /** The log as stored by the last upload, without the read lag. */
  storedLog(
    runId: string,
    jobId: string,
    namespace: string | undefined,
    defaultNamespace: string
  ): string | undefined {
    const run = this.findRun(runId, namespace, defaultNamespace)
    return this.logs.get(logKey(run?.namespaceId ?? namespace ?? defaultNamespace, runId, jobId))
      ?.text
  }

  /** How long until a created run is visible to every route (0 when it is); throws when unknown. */
  msUntilVisible(runId: string, namespace: string | undefined, defaultNamespace: string): number {
    const run = this.findRun(runId, namespace, defaultNamespace)
    if (!run) throw new Error(`run ${runId} was never created`)
    return Math.max(0, run.visibleAt - this.clock())
  }

  /** Removes a run and its logs, as the service's cleanup does. */
  deleteRun(runId: string, namespace: string | undefined, defaultNamespace: string): boolean {
    const run = this.findRun(runId, namespace, defaultNamespace)
    if (!run) return false
    for (const key of this.logs.keys()) {
      if (key.startsWith(`${run.namespaceId}/${runId}/`)) this.logs.delete(key)
    }
    return this.runs.get(run.namespaceId)!.delete(runId)
  }
}
