import { UserError } from '../common/errors.js'
import type { Plan } from '../plan/model.js'
import { BackendError, type BackendClient } from './client.js'
import type { JobRecord, RunRecord } from './types.js'

/**
 * A run whose live state the backend dropped. On orun-backend's 2026-05-08 build a run that
 * goes idle (nobody touches it for about 5 minutes: every job ended, or its runners are gone)
 * is answered from a poorer database copy: statuses kept (a claim that never completed reads
 * `pending`), every dependency `[]`, every heartbeat `null`, and the run gains
 * finishedAt/expiresAt. Claims answer 404 as for an unknown run, and a create with the same id
 * answers 201 and silently starts the run over with every job pending: a runner that joins
 * late (a matrix leg queued for minutes) must see the copy for what it is, and never create.
 */

/** The backend keeps no live run: its read-only copy is all there is. */
export class RunDroppedError extends UserError {
  constructor(
    readonly runId: string,
    /** The copy's jobs (empty when they could not be read). */
    readonly jobs: readonly JobRecord[]
  ) {
    const done = jobs.filter(job => job.status === 'success').length
    super(
      `Run ${runId} is no longer live on the backend: it went idle (no runner touched it for about 5 minutes) and the backend dropped it to a read-only copy` +
        (jobs.length ? ` (${done} of ${jobs.length} job(s) succeeded and are kept there)` : '') +
        '. Creating it again would silently start the whole run over, so this runner does not. ' +
        'Use "Re-run failed jobs": the new attempt carries what succeeded over and runs the rest.'
    )
    this.name = 'RunDroppedError'
  }
}

/** A run record that the copy answered: the live record has no expiresAt. */
export function isDroppedRunRecord(run: RunRecord): boolean {
  return typeof run.expiresAt === 'string' && run.expiresAt.length > 0
}

/**
 * Whether a job list reads like the copy: the plan has dependencies, yet no job read back has
 * any, and no job has a heartbeat. A live run (either build) lists every job's dependencies.
 */
export function readsLikeDroppedCopy(plan: Plan, jobs: readonly JobRecord[]): boolean {
  const planHasDeps = plan.order.some(job => (job.dependsOn ?? []).length > 0)
  return (
    planHasDeps &&
    jobs.length > 0 &&
    jobs.every(job => job.deps.length === 0 && job.heartbeatAt === null)
  )
}

/**
 * Before a create that follows an answer "run unknown": a run the backend still lists is a
 * copy (claims on a live run do not answer unknown, except in the moment after its creation,
 * when its record is unknown too). Throws RunDroppedError for the copy; else the caller creates
 * or joins as usual. Costs one read, and only on that path.
 */
export async function checkNotDropped(client: BackendClient, runId: string): Promise<void> {
  let run: RunRecord
  try {
    run = await client.getRun(runId)
  } catch (error) {
    if (error instanceof BackendError && error.status === 404) return
    throw error
  }
  if (!isDroppedRunRecord(run) && run.finishedAt == null) return
  throw new RunDroppedError(runId, await client.listJobs(runId).catch(() => []))
}
