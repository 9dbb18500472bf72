import * as core from '@actions/core'
import { getArgs, getBoolean, getList, getString } from '../common/inputs.js'
import { UserError } from '../common/errors.js'
import { workspacePath } from '../common/runner.js'
import { parseWorkersInput } from './workers.js'

export interface PlanInputs {
  workingDirectory: string
  name?: string
  all: boolean
  environments: string[]
  components: string[]
  changed: boolean
  base?: string
  head?: string
  args: string[]
  planFile?: string
  runId?: string
  orunVersion: string
  orunPath?: string
  orunDownloadUrl?: string
  token?: string
  upload: boolean
  artifactName?: string
  backendUrl?: string
  audience: string
  backendToken?: string
  /** Pool size for the run action's worker mode: a number, or auto (from the plan's shape). */
  workers: number | 'auto'
}

/** Every input of the plan action, read and checked once. */
export function readPlanInputs(): PlanInputs {
  const changed = getBoolean('changed', false)
  const base = getString('base') || undefined
  const head = getString('head') || undefined
  if (!changed && (base || head)) {
    throw new UserError(
      "Inputs 'base' and 'head' only apply with 'changed: true'; set it or remove them."
    )
  }
  const planFile = getString('plan-file') || undefined
  const inputs: PlanInputs = {
    workingDirectory: workspacePath(getString('working-directory', '.')),
    name: getString('name') || undefined,
    all: getBoolean('all', true),
    environments: getList('environments'),
    components: getList('components'),
    changed,
    base,
    head,
    args: getArgs('args'),
    planFile,
    runId: getString('run-id') || undefined,
    orunVersion: getString('orun-version', 'latest'),
    orunPath: getString('orun-path') || undefined,
    orunDownloadUrl: getString('orun-download-url') || undefined,
    token: getString('github-token') || undefined,
    upload: getBoolean('upload', true),
    artifactName: getString('artifact-name') || undefined,
    backendUrl: getString('backend-url') || undefined,
    audience: getString('audience', 'orun'),
    backendToken: getString('token') || undefined,
    workers: parseWorkersInput(getString('workers', 'auto'))
  }
  if (
    planFile &&
    (inputs.environments.length || inputs.components.length || changed || inputs.args.length)
  ) {
    core.warning(
      "'plan-file' is set, so the plan is not compiled: 'environments', 'components', 'changed' and 'args' are ignored."
    )
  }
  return inputs
}
