/**
 * A lost runner, worded in one place. On orun-backend's 2026-05-08 build a runner that stops
 * heartbeating (its machine was lost, its process killed) is not replaced: the backend's sweep
 * fails its job with this error, and the job's dependents are blocked. That is not a failure of
 * the job's own steps, so every place that reports it (the run action's results and messages,
 * the status summary and annotations) says "runner lost" with these words.
 */

/** The error the backend's heartbeat-timeout sweep writes on the job of a silent runner. */
export const RUNNER_HEARTBEAT_TIMEOUT = 'runner heartbeat timeout'

/** Whether a failed job's error is the backend's, not the job's own: its runner was lost. */
export function isRunnerLost(lastError: string | null | undefined): boolean {
  return lastError?.trim() === RUNNER_HEARTBEAT_TIMEOUT
}

export interface LostRunner {
  jobId: string
  /** The backend's runner id (it starts with the GitHub runner's name), when known. */
  runnerId: string | null
  /** The GitHub job that ran it, when known. */
  jobUrl?: string
}

/** "runner lost: runner r1 (https://…) stopped heartbeating mid-job; its steps did not fail". */
export function runnerLostText(lost: Omit<LostRunner, 'jobId'>): string {
  const who = lost.runnerId ? `runner ${lost.runnerId}` : 'its runner'
  const where = lost.jobUrl ? ` (${lost.jobUrl})` : ''
  return `runner lost: ${who}${where} stopped heartbeating mid-job (its machine was lost or its process killed), so the backend failed the job; its own steps did not fail`
}

/** For a blocked job: "upstream runner lost: a (runner r1 …)". */
export function upstreamRunnerLostText(lost: readonly LostRunner[]): string {
  return `upstream runner lost: ${lost
    .map(
      l =>
        `${l.jobId} (${l.runnerId ? `runner ${l.runnerId}` : 'its runner'}${l.jobUrl ? `, ${l.jobUrl}` : ''} stopped heartbeating mid-job)`
    )
    .join(', ')}`
}

/** What to press: the job never finished, so it runs again in a re-run of failed jobs. */
export const RERUN_AFTER_RUNNER_LOST =
  'The job never finished (its runner was lost, not its steps failed): use "Re-run failed jobs" to run it and the jobs it blocked; what succeeded is carried over, not run again.'
