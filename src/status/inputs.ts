import { UserError } from '../common/errors.js'
import { getList, getRequired, getString, parseWholeNumber } from '../common/inputs.js'
import { resolveBackendUrl } from '../backend/url.js'

/** Which outcomes fail the status step. */
export type FailOn = 'failed' | 'blocked' | 'not-run'

const FAIL_ON: readonly FailOn[] = ['failed', 'blocked', 'not-run']

export interface StatusInputs {
  runId: string
  planId?: string
  planFile?: string
  artifactName?: string
  /** The plan job's job-count output: '0' means no run was created and no artifact uploaded. */
  jobCount?: number
  /** Checked here when given; required only once the plan turns out to have jobs. */
  backendUrl?: string
  audience: string
  token?: string
  githubToken?: string
  failOn: ReadonlySet<FailOn>
}

/** Every input of the status action, read and checked once, before any request. */
export function readStatusInputs(): StatusInputs {
  const jobCountRaw = getString('job-count')
  const jobCount = jobCountRaw ? parseWholeNumber(jobCountRaw) : undefined
  if (jobCountRaw && jobCount === undefined) {
    throw new UserError(
      `Input 'job-count' must be a whole number (the plan job's job-count output), got '${jobCountRaw}'.`
    )
  }
  return {
    runId: getRequired(
      'run-id',
      "pass the plan job's output, e.g. run-id: ${{ needs.plan.outputs.run-id }}. It is empty when the plan job failed or was skipped: fix the plan job first."
    ),
    planId: getString('plan-id') || undefined,
    planFile: getString('plan-file') || undefined,
    artifactName: getString('artifact-name') || undefined,
    jobCount,
    backendUrl: resolveBackendUrl(getString('backend-url'), false),
    audience: getString('audience', 'orun'),
    token: getString('token') || undefined,
    githubToken: getString('github-token') || undefined,
    failOn: parseFailOn(getList('fail-on'))
  }
}

/**
 * `fail-on`: a list of failed, blocked, not-run (jobs that never ran or did not
 * finish), or `any` for all three (the default), or `none` (the step reports
 * but never fails on the jobs' outcomes).
 */
export function parseFailOn(items: readonly string[]): ReadonlySet<FailOn> {
  const words = items.map(item => item.toLowerCase())
  if (!words.length || (words.length === 1 && words[0] === 'any')) return new Set(FAIL_ON)
  if (words.length === 1 && words[0] === 'none') return new Set()
  const unknown = words.filter(word => !(FAIL_ON as readonly string[]).includes(word))
  if (unknown.length) {
    throw new UserError(
      `Input 'fail-on' has ${unknown.map(w => `'${w}'`).join(', ')}: use a list of ${FAIL_ON.join(', ')}, or 'any' (the default), or 'none'.`
    )
  }
  return new Set(words as FailOn[])
}
