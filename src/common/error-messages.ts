/**
 * Hint sentences that errors of several modules end with, kept in one place so the action says
 * the same thing wherever the same mistake surfaces (docs/troubleshooting.md quotes them).
 */

/** The run and the plan disagree: the run jobs must get the plan job's outputs as they are. */
export const PASS_PLAN_OUTPUTS = "Pass the plan job's 'run-id' and 'plan-id' outputs unchanged."

/** As PASS_PLAN_OUTPUTS, when picking another run id also solves it. */
export const PASS_PLAN_OUTPUTS_OR_NEW_RUN_ID =
  "Pass the plan job's 'run-id' and 'plan-id' outputs unchanged, or choose a new 'run-id'."

/** A plan file the action cannot use. */
export const RECOMPILE_PLAN = 'Re-compile it with `orun plan`, or check the plan-file input.'

/** The workflow setting that lets a job request a GitHub OIDC token. */
export const ID_TOKEN_PERMISSION = "'permissions: id-token: write'"

/** What to press when nothing of an earlier attempt can be carried over into a re-run. */
export const RERUN_ALL_JOBS = 'use "Re-run all jobs"'
/**
 * A token refused as not yet valid or expired right after it was minted: the clocks of this
 * runner and the backend disagree (the audience and permissions are fine, or it would not be minted).
 */
export const CLOCK_SKEW =
  "The token's validity window did not contain the backend's time: this runner's clock and the backend's disagree. Check the runner's time sync (NTP; on self-hosted runners `timedatectl`), and the backend host's clock."
