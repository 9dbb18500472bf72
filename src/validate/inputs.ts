import { getString } from '../common/inputs.js'
import { workspacePath } from '../common/runner.js'

export interface ValidateInputs {
  /** Absolute directory holding intent.yaml. */
  workingDirectory: string
  orunVersion: string
  orunPath?: string
  orunDownloadUrl?: string
  token?: string
}

/** Every input of the validate action, read once. */
export function readValidateInputs(): ValidateInputs {
  return {
    workingDirectory: workspacePath(getString('working-directory', '.')),
    orunVersion: getString('orun-version', 'latest'),
    orunPath: getString('orun-path') || undefined,
    orunDownloadUrl: getString('orun-download-url') || undefined,
    token: getString('github-token') || undefined
  }
}
