import type { BackendClient } from '../backend/client.js'
import { BackendError } from '../backend/client.js'
import { explainBackendError } from '../backend/session.js'
import type { JobRecord, RunRecord } from '../backend/types.js'
import { UserError } from '../common/errors.js'
import type { Plan } from '../plan/model.js'
import { parseRunId } from '../common/attempt.js'
import { carriedNote } from '../common/carried-note.js'
import { downloadResultsRecords, listResultsRecords } from '../common/results-record.js'

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
  const given = parseRunId(runId)
  // A plan-action id made in another workflow run is used as given, as the run action does.
  if (given.workflowRun !== undefined && given.workflowRun !== env.GITHUB_RUN_ID) return [runId]
  const ids: string[] = []
  for (let attempt = current; attempt > given.attempt; attempt--)
    ids.push(given.forAttempt(attempt))
  return [...ids, runId]
}

/** The run as its runners' results records tell it, when the backend no longer holds it. */
export interface RecordedRunRead {
  /** The newest attempt's run id with a record, or undefined when none was found. */
  runId?: string
  jobs: JobRecord[]
  /** Why the record could not be read (no runtime token, listing failed). */
  problem?: string
  /** How many runners' records were read, and how many of them had to be downloaded. */
  runners: number
  downloaded: number
}

/**
 * Reads the results records (src/common/results-record.ts) of the newest attempt that has
 * any: one list request, plus a download for each record whose name cannot say everything
 * (a failure's error text, or too many jobs for a name). A job no record names is left out,
 * so it reads as not run: the verdict is never success on missing data.
 */
export async function readRecordedRun(
  runId: string,
  plan: Plan,
  env: NodeJS.ProcessEnv = process.env
): Promise<RecordedRunRead> {
  const candidates = candidateRunIds(runId, env)
  const listed = await listResultsRecords(candidates, plan)
  if (!listed.ok) return { jobs: [], problem: listed.problem, runners: 0, downloaded: 0 }
  const newest = candidates.find(id => listed.records.some(r => r.runId === id))
  if (!newest) return { jobs: [], runners: 0, downloaded: 0 }
  const own = listed.records.filter(r => r.runId === newest)
  const jobs = new Map<string, JobRecord>()
  const put = (jobId: string, status: JobRecord['status'], fields: Partial<JobRecord> = {}) => {
    if (jobs.get(jobId)?.status === 'success') return
    jobs.set(jobId, {
      jobId,
      component: plan.byId.get(jobId)?.component ?? '',
      status,
      deps: [],
      runnerId: null,
      startedAt: null,
      finishedAt: null,
      lastError: null,
      heartbeatAt: null,
      ...fields
    })
  }
  // Where each carried job ran, from the names of the earlier attempts' records.
  const ranIn = new Map<string, { attempt: number; runner: string }>()
  for (const record of listed.records) {
    if (record.runId === newest) continue
    const attempt = parseRunId(record.runId).attempt
    for (const id of record.succeeded ?? [])
      if (!ranIn.has(id)) ranIn.set(id, { attempt, runner: record.runner })
  }
  const noteFor = (id: string) => {
    const origin = ranIn.get(id)
    return carriedNote(origin)
  }
  const toDownload = own.filter(r => !r.succeeded || r.failed?.length)
  for (const record of own) {
    if (toDownload.includes(record)) continue
    for (const id of record.succeeded ?? []) put(id, 'success', { runnerId: record.runner })
    for (const id of record.carried ?? [])
      put(id, 'success', { runnerId: record.runner, lastError: noteFor(id) })
  }
  for (const record of await downloadResultsRecords(toDownload, plan.id)) {
    for (const job of record.jobs) {
      const times = { startedAt: job.startedAt ?? null, finishedAt: job.endedAt ?? null }
      if (job.status === 'success') put(job.jobId, 'success', { runnerId: job.runner, ...times })
      else if (job.status === 'carried')
        put(job.jobId, 'success', {
          runnerId: record.runner,
          lastError: carriedNote({ attempt: job.attempt, runner: job.runner })
        })
      else if (job.status === 'failed')
        put(job.jobId, 'failed', { runnerId: job.runner, lastError: job.error ?? null, ...times })
      // Blocked jobs stay unnamed: the plan's DAG shows them blocked by their failed upstream.
    }
  }
  return {
    runId: newest,
    jobs: [...jobs.values()],
    runners: own.length,
    downloaded: toDownload.length
  }
}
