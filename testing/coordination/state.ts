/**
 * The coordinator's state machine: runs per namespace, their jobs, claims (dependency gate,
 * duplicate, takeover), heartbeats, updates with the run rollup, and stored logs, with the
 * service's eventual consistency (a new run's init lag, a new log's read lag).
 */
import { randomUUID } from 'node:crypto'
import { ApiError } from './api-error.js'
import type { StoredJobView } from './types.js'

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
    private readonly consistency: Consistency = { initLagMs: () => 0, logVisibilityMs: () => 0 }
  ) {}

  private nowIso(): string {
    return new Date(this.clock()).toISOString()
  }

  private runOf(namespaceId: string, runId: string): RunState | undefined {
    return this.runs.get(namespaceId)?.get(runId)
  }

  /** A run as the routes other than create see it: not yet while it initialises. */
  private visibleRun(namespaceId: string, runId: string): RunState | undefined {
    const run = this.runOf(namespaceId, runId)
    return run && this.clock() >= run.visibleAt ? run : undefined
  }

  private requireCoordinator(namespaceId: string, runId: string): RunState {
    const run = this.visibleRun(namespaceId, runId)
    if (!run) throw new ApiError(404, 'NOT_FOUND', 'Coordinator not initialized')
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
    if (existing) {
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
      visibleAt: this.clock() + this.consistency.initLagMs()
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
    run.updatedAt = now
    const all = [...run.jobs.values()]
    if (all.every(j => j.status === 'success')) run.status = 'completed'
    else if (all.some(j => j.status === 'failed')) run.status = 'failed'
    if (run.status !== 'running' && run.finishedAt === null) run.finishedAt = now
    return { status: 200, json: { ok: true } }
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
    return { status: 200, json: publicJob(requireJob(this.requireCoordinator(ns, runId), jobId)) }
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
