import * as core from '@actions/core'
import { getArgs, getBoolean, getList, getString, parseWholeNumber } from '../common/inputs.js'
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
  /** `from-ci: github`: compile with `--from-ci github --event-file $GITHUB_EVENT_PATH`. */
  fromCi?: { provider: string; eventFile: string }
  args: string[]
  planFile?: string
  runId?: string
  orunVersion: string
  orunPath?: string
  orunDownloadUrl?: string
  token?: string
  upload: boolean
  artifactName?: string
  artifactRetentionDays?: number
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
  const fromCi = readFromCi(planFile !== undefined)
  const inputs: PlanInputs = {
    workingDirectory: workspacePath(getString('working-directory', '.')),
    name: getString('name') || undefined,
    all: getBoolean('all', true),
    environments: getList('environments'),
    components: getList('components'),
    changed,
    base,
    head,
    fromCi,
    args: getArgs('args'),
    planFile,
    runId: getString('run-id') || undefined,
    orunVersion: getString('orun-version', 'latest'),
    orunPath: getString('orun-path') || undefined,
    orunDownloadUrl: getString('orun-download-url') || undefined,
    token: getString('github-token') || undefined,
    upload: getBoolean('upload', true),
    artifactName: getString('artifact-name') || undefined,
    artifactRetentionDays: getRetentionDays(),
    backendUrl: getString('backend-url') || undefined,
    audience: getString('audience', 'orun'),
    backendToken: getString('token') || undefined,
    workers: parseWorkersInput(getString('workers', 'auto'))
  }
  if (
    planFile &&
    (inputs.environments.length ||
      inputs.components.length ||
      changed ||
      inputs.args.length ||
      getString('from-ci'))
  ) {
    core.warning(
      "'plan-file' is set, so the plan is not compiled: 'environments', 'components', 'changed', 'from-ci' and 'args' are ignored."
    )
  }
  return inputs
}

/** Optional: 1-90 days; empty keeps the repository's artifact retention. */
function getRetentionDays(): number | undefined {
  const raw = getString('artifact-retention-days')
  if (!raw) return undefined
  const days = parseWholeNumber(raw)
  if (days === undefined || days < 1 || days > 90) {
    throw new UserError(
      `Input 'artifact-retention-days' is '${raw}'; use a whole number of days from 1 to 90, or leave it empty for the repository's retention. Re-runs need the plan artifact: keep it at least as long as you may re-run.`
    )
  }
  return days
}

/** orun normalises only GitHub events (`--from-ci github`); the event is the file GitHub writes for the run. */
const CI_PROVIDERS = ['github']

function readFromCi(hasPlanFile: boolean): PlanInputs['fromCi'] {
  const provider = getString('from-ci')
  if (!provider || hasPlanFile) return undefined
  if (!CI_PROVIDERS.includes(provider)) {
    throw new UserError(
      `Input 'from-ci' must be ${CI_PROVIDERS.join(' or ')} (the CI whose event orun reads), got '${provider}'. ` +
        'Remove it to compile without trigger bindings.'
    )
  }
  const eventFile = process.env.GITHUB_EVENT_PATH?.trim()
  if (!eventFile) {
    throw new UserError(
      "Input 'from-ci: github' needs the event file GitHub names in GITHUB_EVENT_PATH, which is not set. " +
        'Outside GitHub Actions, set GITHUB_EVENT_PATH to an event JSON file (and GITHUB_EVENT_NAME), or remove from-ci.'
    )
  }
  return { provider, eventFile }
}
