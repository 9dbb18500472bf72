import { readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { readLimitHint, type LimitHint } from '../common/limit-hint.js'
import type { BackendClient } from '../backend/client.js'
import { BackendError } from '../backend/client.js'
import { explainBackendError } from '../backend/session.js'
import { UserError } from '../common/errors.js'
import { makeTempDir, workspacePath } from '../common/runner.js'
import { defaultArtifactName, downloadPlanArtifact } from '../plan/handoff.js'
import { parsePlan, selectJobs, type Plan } from '../plan/model.js'
import type { RunInputs } from './inputs.js'
import { PASS_PLAN_OUTPUTS_OR_NEW_RUN_ID } from '../common/error-messages.js'

/** Where the run action's plan comes from, which of its jobs this runner takes, and whether the run is this plan's. */

/** The job ids this runner runs: the one named by 'job', or a slice by environments/components. */
export function selectTargets(plan: Plan, inputs: RunInputs): string[] {
  const targets = inputs.job
    ? [checkedJob(plan, inputs.job)]
    : selectJobs(plan, inputs.environments, inputs.components).map(j => j.id)
  if (!targets.length) {
    throw new UserError(
      `No job of plan ${plan.id} matches environments '${inputs.environments.join(',')}' and components '${inputs.components.join(',')}' together.`
    )
  }
  return targets
}

/**
 * A run id made by the plan action ends with its plan id, so a mismatch is seen
 * without a request. A custom run id costs one read: jobs of another plan that
 * happen to share ids must not run inside that plan's run.
 */
export async function checkRunMatchesPlan(
  client: BackendClient,
  runId: string,
  plan: Plan
): Promise<void> {
  const conflict = (other: string) =>
    new UserError(
      `Run ${runId} is already used by a different plan (${other}); this job's plan is ${plan.id}. ${PASS_PLAN_OUTPUTS_OR_NEW_RUN_ID}`
    )
  const derived = /^gha-\d+-\d+-([0-9a-f]{12})$/.exec(runId)?.[1]
  if (derived) {
    if (derived !== plan.id) throw conflict(derived)
    return
  }
  try {
    const run = await client.getRun(runId)
    if (run.planChecksum !== plan.id) throw conflict(run.planChecksum)
  } catch (error) {
    // Not created yet: the first claim creates it with this plan.
    if (!(error instanceof BackendError && error.status === 404))
      throw explainBackendError(error, `reading run ${runId}`)
  }
}

function checkedJob(plan: Plan, jobId: string): string {
  if (plan.byId.has(jobId)) return jobId
  const sample = [...plan.byId.keys()].slice(0, 5).join(', ')
  throw new UserError(
    `Input 'job' is '${jobId}', which is not in plan ${plan.id} (jobs: ${sample}${plan.byId.size > 5 ? ', ...' : ''}). Use job: \${{ matrix.job }} with the plan job's 'jobs' output.`
  )
}

/** Also used by the status action, whose inputs name the plan the same way. */
export async function loadPlan(
  inputs: Pick<RunInputs, 'planFile' | 'artifactName' | 'runId' | 'planId'>
): Promise<Plan> {
  return (await loadHandoff(inputs)).plan
}

/**
 * The plan, and the rate-limit hint the plan step's probe left beside it: in the artifact, or
 * beside its 'plan-file' output when the workflow moves that folder itself. Without one a
 * runner learns from its own answers.
 */
export async function loadHandoff(
  inputs: Pick<RunInputs, 'planFile' | 'artifactName' | 'runId' | 'planId'>
): Promise<{ plan: Plan; limitHint?: LimitHint }> {
  const file = inputs.planFile
    ? workspacePath(inputs.planFile)
    : await downloadPlanArtifact(
        inputs.artifactName ?? defaultArtifactName(inputs.runId),
        makeTempDir('orun-plan-')
      )
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new UserError(
      `Input 'plan-file' points to ${file}, which cannot be read (${(error as Error).message}).`
    )
  }
  const plan = parsePlan(text, file)
  if (inputs.planId && inputs.planId !== plan.id) {
    throw new UserError(
      `Input 'plan-id' is '${inputs.planId}', but the plan file ${file} has plan id '${plan.id}'. Pass the plan job's 'plan-id' output together with its plan.`
    )
  }
  return { plan, limitHint: readLimitHint(dirname(file)) }
}
