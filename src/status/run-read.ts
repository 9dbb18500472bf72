import type { BackendClient } from '../backend/client.js'
import { BackendError } from '../backend/client.js'
import { explainBackendError } from '../backend/session.js'
import type { JobRecord, RunRecord } from '../backend/types.js'
import { UserError } from '../common/errors.js'
import type { Plan } from '../plan/model.js'

export interface RunRead {
  /** The run id that was read (or the given one, when no run exists). */
  runId: string
  run?: RunRecord
  jobs: JobRecord[]
}

/**
 * The run and its jobs, in as few requests as the protocol allows: GET run
 * (which also tells a missing run apart, since GET jobs of an unknown run
 * answers an empty list) and GET jobs.
 *
 * On a re-run (attempt N), the run jobs of attempt N work in a run of that
 * attempt (see candidateRunIds): the newest attempt's run that exists is read,
 * back to the given one (when only this status job was re-run, none newer exists).
 */
export async function readRun(client: BackendClient, runId: string, plan: Plan): Promise<RunRead> {
  for (const candidate of candidateRunIds(runId)) {
    let run: RunRecord
    try {
      run = await client.getRun(candidate)
    } catch (error) {
      if (error instanceof BackendError && error.status === 404) continue
      throw explainBackendError(error, `reading run ${candidate}`)
    }
    if (run.planChecksum !== plan.id) {
      throw new UserError(
        `Run ${candidate} was created from plan ${run.planChecksum}, but this step's plan is ${plan.id}. Pass the plan job's 'run-id' and 'plan-id' outputs (and its plan) unchanged.`
      )
    }
    try {
      return { runId: candidate, run, jobs: await client.listJobs(candidate) }
    } catch (error) {
      throw explainBackendError(error, `listing the jobs of run ${candidate}`)
    }
  }
  return { runId, jobs: [] }
}

/**
 * Newest first: this attempt's run id, each earlier attempt's, down to the given one.
 * The same per-attempt ids as the run action's re-runs: `gha-<run>-<N>-<plan>` for
 * ids the plan action made, `<custom>-a<N>` for a custom 'run-id' (attempt 1: as given).
 */
export function candidateRunIds(runId: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const current = Number(env.GITHUB_RUN_ATTEMPT || '1')
  if (!Number.isInteger(current) || current <= 1) return [runId]
  const derived = /^gha-(\d+)-(\d+)-([0-9a-f]{12})$/.exec(runId)
  if (derived && derived[1] !== env.GITHUB_RUN_ID) return [runId]
  const given = derived ? Number(derived[2]) : Number(/-a([1-9]\d*)$/.exec(runId)?.[1] ?? 1)
  const base = derived ? '' : runId.replace(/-a[1-9]\d*$/, '')
  const idFor = (attempt: number) =>
    derived
      ? `gha-${derived[1]}-${attempt}-${derived[3]}`
      : attempt > 1
        ? `${base}-a${attempt}`
        : base
  const ids: string[] = []
  for (let attempt = current; attempt > given; attempt--) ids.push(idFor(attempt))
  return [...ids, runId]
}
