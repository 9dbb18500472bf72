import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { UserError } from './errors.js'

/** Facts about the runner and workflow run, read from the environment GitHub sets. */

/** A fresh directory under RUNNER_TEMP (outside the workspace, emptied after each job). */
export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(process.env.RUNNER_TEMP || tmpdir(), prefix))
}

export function workspacePath(path: string): string {
  return resolve(process.env.GITHUB_WORKSPACE || process.cwd(), path)
}

export function defaultRunId(planId: string): string {
  const runId = process.env.GITHUB_RUN_ID
  if (!runId) {
    throw new UserError(
      "GITHUB_RUN_ID is not set, so no run id can be derived: set the 'run-id' input when running outside GitHub Actions."
    )
  }
  return `gha-${runId}-${process.env.GITHUB_RUN_ATTEMPT || '1'}-${planId}`
}
