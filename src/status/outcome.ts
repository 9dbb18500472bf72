import type { JobRecord, RunRecord } from '../backend/types.js'
import type { Plan } from '../plan/model.js'
import { isRunnerLost } from '../common/runner-lost.js'
import { readCarriedNote } from '../common/carried-note.js'

/**
 * What became of each job of the plan, from the backend's records. The
 * backend knows pending/running/success/failed/skipped; a pending job is
 * "blocked" when something upstream failed (the run action never claims it),
 * else it never ran (its runner was cancelled, or never started).
 */
export type Outcome =
  'success' | 'carried' | 'skipped' | 'failed' | 'blocked' | 'running' | 'not-run'

/** Display order: problems first. */
export const OUTCOMES: readonly Outcome[] = [
  'failed',
  'blocked',
  'not-run',
  'running',
  'carried',
  'success',
  'skipped'
]

export type Verdict = 'success' | 'failed' | 'incomplete'

export interface JobView {
  id: string
  /** The plan's checkName (what the matrix job and the check are named by), else the job id. */
  name: string
  environment: string
  component: string
  deps: string[]
  outcome: Outcome
  /** For a blocked job: the failed jobs upstream of it that stopped it. */
  blockedBy: string[]
  /** For a job carried over from an earlier attempt's run: that attempt. */
  carriedFrom?: number
  startedAt?: number
  finishedAt?: number
  durationMs?: number
  /** From the latest dependency's finish (or the run's creation, for a root) to this job's start. */
  waitedMs?: number
  runnerId?: string
  error?: string
  /** A failed job whose runner was lost mid-job (the backend's sweep failed it), not its steps. */
  runnerLost?: boolean
}

export interface RunView {
  runId: string
  /** Absent when the backend has no such run. */
  run?: RunRecord
  /** Plan order (dependencies first). */
  jobs: JobView[]
  byId: ReadonlyMap<string, JobView>
  counts: Record<Outcome, number>
  verdict: Verdict
}

const time = (iso: string | null | undefined) => {
  const ms = iso ? Date.parse(iso) : NaN
  return Number.isNaN(ms) ? undefined : ms
}

export function classifyRun(
  plan: Plan,
  runId: string,
  run: RunRecord | undefined,
  records: readonly JobRecord[],
  /** The records come from the results record, not the backend: a complete one may still read success. */
  fromRecord = false
): RunView {
  const recordOf = new Map(records.map(record => [record.jobId, record]))
  const byId = new Map<string, JobView>()
  const runCreated = time(run?.createdAt)
  // Plan order is topological, so every dependency is classified before its dependents.
  for (const job of plan.order) {
    const record = recordOf.get(job.id)
    const deps = job.dependsOn ?? []
    const view: JobView = {
      id: job.id,
      name: typeof job.checkName === 'string' && job.checkName.trim() ? job.checkName : job.id,
      environment: job.environment ?? '',
      component: job.component ?? '',
      deps,
      outcome: 'not-run',
      blockedBy: [],
      startedAt: time(record?.startedAt),
      finishedAt: time(record?.finishedAt),
      runnerId: record?.runnerId ?? undefined,
      error: record?.lastError ?? undefined
    }
    switch (record?.status) {
      case 'success': {
        const carried = readCarriedNote(record.lastError)
        view.outcome = carried ? 'carried' : 'success'
        if (carried?.attempt !== undefined) view.carriedFrom = carried.attempt
        break
      }
      case 'failed':
      case 'running':
      case 'skipped':
        view.outcome = record.status
        if (record.status === 'failed' && isRunnerLost(record.lastError)) view.runnerLost = true
        break
      default: {
        const blockers = new Set<string>()
        for (const dep of deps) {
          const upstream = byId.get(dep)!
          if (upstream.outcome === 'failed') blockers.add(dep)
          if (upstream.outcome === 'blocked') upstream.blockedBy.forEach(id => blockers.add(id))
        }
        view.blockedBy = [...blockers]
        view.outcome = blockers.size ? 'blocked' : 'not-run'
      }
    }
    if (view.startedAt !== undefined && view.finishedAt !== undefined)
      view.durationMs = Math.max(0, view.finishedAt - view.startedAt)
    if (view.startedAt !== undefined) {
      const ready = deps.length
        ? Math.max(...deps.map(dep => byId.get(dep)!.finishedAt ?? -Infinity))
        : runCreated
      if (ready !== undefined && Number.isFinite(ready))
        view.waitedMs = Math.max(0, view.startedAt - ready)
    }
    byId.set(job.id, view)
  }
  const jobs = plan.order.map(job => byId.get(job.id)!)
  const counts = Object.fromEntries(OUTCOMES.map(o => [o, 0])) as Record<Outcome, number>
  for (const job of jobs) counts[job.outcome]++
  return {
    runId,
    run,
    jobs,
    byId,
    counts,
    verdict: verdictOf(counts, run !== undefined || fromRecord)
  }
}

function verdictOf(counts: Record<Outcome, number>, runExists: boolean): Verdict {
  if (counts.failed || counts.blocked) return 'failed'
  if (counts['not-run'] || counts.running || !runExists) return 'incomplete'
  return 'success'
}

/**
 * The chain of jobs that set the run's length: from the job that finished
 * last, back through the dependency that finished latest, to a root.
 */
export function criticalPath(view: RunView): JobView[] {
  const finished = view.jobs.filter(job => job.finishedAt !== undefined)
  if (!finished.length) return []
  let current = finished.reduce((a, b) => (b.finishedAt! > a.finishedAt! ? b : a))
  const chain = [current]
  for (;;) {
    const deps = current.deps
      .map(dep => view.byId.get(dep)!)
      .filter(dep => dep.finishedAt !== undefined)
    if (!deps.length) break
    current = deps.reduce((a, b) => (b.finishedAt! > a.finishedAt! ? b : a))
    chain.push(current)
  }
  return chain.reverse()
}
