import * as core from '@actions/core'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { LIMIT_HINT_FILE } from '../common/limit-hint.js'
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

export interface UploadOptions {
  /** This workflow run's attempt: from attempt 2 on, a same-named artifact is an earlier attempt's plan. */
  attempt: number
  /** Days to keep the plan; by default the repository's retention, so re-runs find it for as long as GitHub allows them. */
  retentionDays?: number
}

/**
 * Uploads planFile, which must be named PLAN_ARTIFACT_FILE, and the rate-limit hint beside it
 * when the plan step's probe wrote one (backend/limit-probe.ts).
 */
export async function uploadPlanArtifact(
  planFile: string,
  name: string,
  options: UploadOptions
): Promise<void> {
  requireRuntime(
    'upload the plan',
    "set 'upload: false' and pass the plan file to the run jobs yourself"
  )
  const client = await artifactClient()
  const upload = () =>
    client.uploadArtifact(name, handoffFiles(planFile), dirname(planFile), {
      retentionDays: options.retentionDays
    })
  try {
    try {
      await upload()
    } catch (error) {
      // Artifacts outlive attempts: re-running the plan job ("Re-run all jobs") meets the
      // plan it uploaded before under a fixed 'artifact-name'. This attempt's plan replaces it.
      if (!(options.attempt > 1 && isConflict(error))) throw error
      core.info(
        `Artifact '${name}' holds the plan of an earlier attempt of this workflow run: replacing it with this attempt's plan.`
      )
      await client.deleteArtifact(name)
      await upload()
    }
  } catch (error) {
    const message = errorMessage(error)
    if (isConflict(error)) {
      throw new UserError(
        `An artifact named '${name}' already exists in this workflow run (${message}). ` +
          "Two plan steps upload under the same name: give each its own 'artifact-name', or 'run-id'."
      )
    }
    throw new UserError(`Uploading the plan as artifact '${name}' failed: ${message}`)
  }
  core.info(`Plan uploaded as artifact '${name}'.`)
}

function isConflict(error: unknown): boolean {
  return /conflict|already exists/i.test(errorMessage(error))
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

/** The plan artifact holds the plan under this name (and the limit hint, when there is one). */
export const PLAN_ARTIFACT_FILE = 'plan.json'

function handoffFiles(planFile: string): string[] {
  const hint = join(dirname(planFile), LIMIT_HINT_FILE)
  return existsSync(hint) ? [planFile, hint] : [planFile]
}

function requireRuntime(what: string, alternative: string): void {
  if (!process.env.ACTIONS_RUNTIME_TOKEN) {
    throw new UserError(
      `Cannot ${what} as an artifact: ACTIONS_RUNTIME_TOKEN is not set, so this is not a GitHub Actions runner ` +
        `(or the step runs in a container without it). Either run on GitHub Actions, or ${alternative}.`
    )
  }
}
