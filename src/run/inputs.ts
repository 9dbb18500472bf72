import {
  getArgs,
  getChoice,
  getDuration,
  getList,
  getRequired,
  getString
} from '../common/inputs.js'
import { UserError } from '../common/errors.js'
import { workspacePath } from '../common/runner.js'
import { resolveBackendUrl } from '../backend/url.js'

export interface RunInputs {
  planId?: string
  runId: string
  job?: string
  /** Pool mode: this runner's worker index (matrix.worker); it takes any runnable job of the slice. */
  worker?: number
  /** Pool mode: how many workers the pool has (default strategy.job-total); each owns a share of the jobs. */
  poolSize?: number
  environments: string[]
  components: string[]
  backendUrl: string
  audience: string
  token?: string
  workingDirectory: string
  planFile?: string
  artifactName?: string
  orunVersion: string
  orunPath?: string
  orunDownloadUrl?: string
  githubToken?: string
  args: string[]
  dependencyTimeoutMs: number
  heartbeatIntervalMs: number
  onDuplicate: 'wait' | 'skip'
  logUploadIntervalMs: number
  redactEnv: string[]
}

/**
 * What each duration input accepts. A heartbeat must come well inside the backend's
 * 300 s takeover window; every bound stays far below what a Node timer can hold
 * (2^31-1 ms: a longer timer fires at once, which would flood the backend).
 */
export const DURATION_RANGES = {
  dependencyTimeout: { min: '10s', max: '24h' },
  heartbeatInterval: { min: '1s', max: '2m' },
  logUploadInterval: { min: '1s', max: '1h' }
} as const

/** Every input of the run action, read and checked once, before any backend call. */
export function readRunInputs(): RunInputs {
  const job = getString('job') || undefined
  const worker = readWorker()
  const environments = getList('environments')
  const components = getList('components')
  if (job && worker !== undefined) {
    throw new UserError(
      "Set either 'job' (one matrix job per runner) or 'worker' (a pool worker that takes any runnable job), not both."
    )
  }
  if (job && (environments.length || components.length)) {
    throw new UserError(
      "Set either 'job' (one matrix job) or 'environments'/'components' (a slice run on this runner), not both."
    )
  }
  if (!job && worker === undefined && !environments.length && !components.length) {
    throw new UserError(
      "Nothing to run: set 'job' (e.g. job: ${{ matrix.job }}), 'worker' (pool mode, e.g. worker: ${{ matrix.worker }}), or 'environments'/'components' to run a slice of the plan on this runner."
    )
  }
  return {
    planId: getString('plan-id') || undefined,
    runId: getRequired(
      'run-id',
      "pass the plan job's output, e.g. run-id: ${{ needs.plan.outputs.run-id }}."
    ),
    job,
    worker,
    poolSize: worker === undefined ? undefined : readPoolSize(),
    environments,
    components,
    backendUrl: resolveBackendUrl(getString('backend-url'), true)!,
    audience: getString('audience', 'orun'),
    token: getString('token') || undefined,
    workingDirectory: workspacePath(getString('working-directory', '.')),
    planFile: getString('plan-file') || undefined,
    artifactName: getString('artifact-name') || undefined,
    orunVersion: getString('orun-version', 'latest'),
    orunPath: getString('orun-path') || undefined,
    orunDownloadUrl: getString('orun-download-url') || undefined,
    githubToken: getString('github-token') || undefined,
    args: getArgs('args'),
    dependencyTimeoutMs: getDuration(
      'dependency-timeout',
      '30m',
      DURATION_RANGES.dependencyTimeout
    ),
    heartbeatIntervalMs: getDuration(
      'heartbeat-interval',
      '30s',
      DURATION_RANGES.heartbeatInterval
    ),
    onDuplicate: getChoice('on-duplicate', ['wait', 'skip'] as const, 'wait'),
    logUploadIntervalMs: getDuration(
      'log-upload-interval',
      '15s',
      DURATION_RANGES.logUploadInterval
    ),
    redactEnv: getList('redact-env')
  }
}

/** The pool worker index: a whole number from 1 (matrix.worker of the plan's workers output). */
function readWorker(): number | undefined {
  const raw = getString('worker')
  if (!raw) return undefined
  if (!/^\d+$/.test(raw) || Number(raw) < 1) {
    throw new UserError(
      `Input 'worker' must be a whole number from 1, got '${raw}'. Use worker: \${{ matrix.worker }} with matrix: worker: \${{ fromJson(needs.plan.outputs.workers) }}.`
    )
  }
  return Number(raw)
}

/**
 * The pool's size: a whole number from 1. Its default, strategy.job-total, is
 * the matrix size, which is the pool's size when the matrix is the workers list.
 * Empty (a runner that cannot evaluate the default) means unknown.
 */
function readPoolSize(): number | undefined {
  const raw = getString('pool-size')
  if (!raw) return undefined
  if (!/^\d+$/.test(raw) || Number(raw) < 1) {
    throw new UserError(
      `Input 'pool-size' must be a whole number from 1, got '${raw}'. Leave it out (it defaults to the matrix size, \${{ strategy.job-total }}), or pass the number of workers in the plan job's workers output, e.g. pool-size: 8.`
    )
  }
  return Number(raw)
}
