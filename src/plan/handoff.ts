import * as core from '@actions/core'
import { dirname, join } from 'node:path'
import { UserError, errorMessage } from '../common/errors.js'

/**
 * Hands the compiled plan from the plan job to the matrix runners as a
 * workflow artifact, so workflows need no upload/download steps of their own.
 */

/**
 * Loaded on first use: the artifact client is most of the bundle, and a run
 * job given 'plan-file' (or a plan job with 'upload: false') never needs it.
 */
async function artifactClient() {
  const { DefaultArtifactClient } = await import('@actions/artifact')
  return new DefaultArtifactClient()
}

/** Artifact names may not hold these characters. */
const forbidden = /[":<>|*?\r\n\\/]/g

export function defaultArtifactName(runId: string): string {
  return `orun-plan-${runId}`.replace(forbidden, '-')
}

/** Uploads planFile, which must be named PLAN_ARTIFACT_FILE. */
export async function uploadPlanArtifact(planFile: string, name: string): Promise<void> {
  requireRuntime(
    'upload the plan',
    "set 'upload: false' and pass the plan file to the run jobs yourself"
  )
  try {
    // A plan is only needed while this workflow run lasts.
    await (
      await artifactClient()
    ).uploadArtifact(name, [planFile], dirname(planFile), {
      retentionDays: 1
    })
  } catch (error) {
    const message = errorMessage(error)
    if (/conflict|already exists/i.test(message)) {
      throw new UserError(
        `An artifact named '${name}' already exists in this workflow run (${message}). ` +
          "Give each plan step its own 'artifact-name', or 'run-id'."
      )
    }
    throw new UserError(`Uploading the plan as artifact '${name}' failed: ${message}`)
  }
  core.info(`Plan uploaded as artifact '${name}'.`)
}

/** Downloads the plan artifact into dir and returns the plan file's path. */
export async function downloadPlanArtifact(name: string, dir: string): Promise<string> {
  requireRuntime('download the plan', "pass 'plan-file' instead")
  const client = await artifactClient()
  let artifactId: number
  try {
    artifactId = (await client.getArtifact(name)).artifact.id
  } catch (error) {
    throw new UserError(
      `No artifact named '${name}' in this workflow run (${errorMessage(error)}). ` +
        "The plan job must finish first ('needs: plan') with 'upload: true'; pass the plan job's " +
        "'artifact-name' output as 'artifact-name', or pass 'plan-file'."
    )
  }
  const { downloadPath } = await client.downloadArtifact(artifactId, { path: dir })
  return join(downloadPath ?? dir, PLAN_ARTIFACT_FILE)
}

/** The plan artifact holds one file with this name. */
export const PLAN_ARTIFACT_FILE = 'plan.json'

function requireRuntime(what: string, alternative: string): void {
  if (!process.env.ACTIONS_RUNTIME_TOKEN) {
    throw new UserError(
      `Cannot ${what} as an artifact: ACTIONS_RUNTIME_TOKEN is not set, so this is not a GitHub Actions runner ` +
        `(or the step runs in a container without it). Either run on GitHub Actions, or ${alternative}.`
    )
  }
}
