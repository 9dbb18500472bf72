/**
 * Workflow run attempts and the run ids that belong to them. GitHub re-runs a
 * workflow run as a new attempt (GITHUB_RUN_ATTEMPT 2, 3, ...) of the same run
 * id, so each attempt needs a backend run of its own: a failed job stays failed
 * in the run of the attempt that failed it.
 *
 * - Ids made by the plan action, `gha-<run>-<attempt>-<plan>`, carry the attempt.
 * - A custom id `X` is the run of attempt 1; attempt N > 1 works in `X-aN`.
 *   The plan action applies the same rule to its 'run-id' input, so its output
 *   always names the attempt in which the plan job last ran.
 */

/** This workflow run's attempt (1 when not on GitHub Actions). */
export function currentAttempt(): number {
  const attempt = Number(process.env.GITHUB_RUN_ATTEMPT || '1')
  return Number.isInteger(attempt) && attempt >= 1 ? attempt : 1
}

export interface AttemptRunId {
  /** The attempt whose run this id names. */
  attempt: number
  /** The GitHub workflow run a plan-action id was made in (undefined for custom ids). */
  workflowRun?: string
  /** The id of the same plan job's run in another attempt. */
  forAttempt(attempt: number): string
}

const planActionId = /^gha-(\d+)-(\d+)-([0-9a-f]{12})$/
const customAttemptSuffix = /^(.+)-a([1-9]\d*)$/

export function parseRunId(runId: string): AttemptRunId {
  const derived = planActionId.exec(runId)
  if (derived) {
    const [, run, attempt, plan] = derived
    return {
      attempt: Number(attempt),
      workflowRun: run,
      forAttempt: n => `gha-${run}-${n}-${plan}`
    }
  }
  const suffixed = customAttemptSuffix.exec(runId)
  const base = suffixed ? suffixed[1] : runId
  return {
    attempt: suffixed ? Number(suffixed[2]) : 1,
    forAttempt: n => customRunId(base, n)
  }
}

/** The run id of attempt `attempt` for a custom 'run-id': the id itself in attempt 1. */
export function customRunId(custom: string, attempt: number): string {
  return attempt > 1 ? `${custom}-a${attempt}` : custom
}
