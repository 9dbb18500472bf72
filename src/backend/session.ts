import * as core from '@actions/core'
import { UserError } from '../common/errors.js'
import type { Plan } from '../plan/model.js'
import { createTokenSource, type TokenSource } from './auth.js'
import { BackendClient, BackendError } from './client.js'
import { toBackendPlan } from './plan.js'
import type { CreateRunResult } from './types.js'
import {
  CLOCK_SKEW,
  ID_TOKEN_PERMISSION,
  PASS_PLAN_OUTPUTS_OR_NEW_RUN_ID
} from '../common/error-messages.js'

export interface BackendSettings {
  backendUrl: string
  audience: string
  token?: string
  /** Ends every call's retries (and token requests) at once: the runner is stopping. */
  signal?: AbortSignal
}

/** One token source and one client per action process, so tokens are cached across every call. */
export function connectBackend(settings: BackendSettings): {
  client: BackendClient
  tokens: TokenSource
} {
  const tokens = createTokenSource({
    audience: settings.audience,
    staticToken: settings.token,
    signal: settings.signal,
    log: message => core.info(message)
  })
  const client = new BackendClient({
    baseUrl: settings.backendUrl,
    tokens,
    signal: settings.signal,
    log: message => core.info(message)
  })
  return { client, tokens }
}

/**
 * Creates the run, or joins it when another runner already did (same plan
 * checksum). The plan was validated (ids, deps, cycles) before this: the
 * backend would accept a cycle and let its jobs wait forever.
 */
export async function joinRun(
  client: BackendClient,
  plan: Plan,
  runId: string
): Promise<CreateRunResult> {
  try {
    return await client.createRun({
      plan: toBackendPlan(plan.file, plan.id),
      runId,
      triggerType: 'ci',
      actor: process.env.GITHUB_ACTOR || 'unknown',
      dryRun: false
    })
  } catch (error) {
    throw explainBackendError(error, `joining run ${runId}`, { runId })
  }
}

/** Ids a failed call carried, so an answer about their size can name the long one. */
export interface CallIds {
  runId?: string
  jobId?: string
}

/** Turns backend answers a user can fix into actionable UserErrors; other errors pass through. */
export function explainBackendError(error: unknown, doing: string, ids: CallIds = {}): unknown {
  if (!(error instanceof BackendError)) return error
  if (error.code === 'CANCELLED') return error
  const answered = `The backend answered ${error.status} ${error.code} "${error.message}" while ${doing}`
  const tried = error.describeRetries()
  switch (error.status) {
    case 401:
      // A freshly minted token refused on time grounds: the clock, not the audience or permissions.
      if (/token (not yet valid|expired)/i.test(error.message))
        return new UserError(`${answered}. ${CLOCK_SKEW}`)
      return new UserError(
        `${answered}. The token was refused: check that the backend's audience matches the 'audience' input (default orun) and that the job has ${ID_TOKEN_PERMISSION}.`
      )
    case 403:
      return new UserError(
        `${answered}. This repository may not use that run, or the backend accepts only GitHub OIDC tokens for this call: remove the static 'token'/ORUN_TOKEN and grant ${ID_TOKEN_PERMISSION}.`
      )
    case 404:
      // POST /v1/runs always exists on orun-backend: whatever answers 404 there is something else.
      if (error.endpoint === 'POST /v1/runs') {
        return new UserError(
          `The backend URL does not look like orun-backend: POST /v1/runs answered 404 (${error.message}) while ${doing}. Check 'backend-url' (or ORUN_BACKEND_URL): it must be the service's base URL, without a path prefix such as /api or /v1 unless the service is mounted there.`
        )
      }
      return error
    case 409:
      return new UserError(
        `${answered}. The run id is already used by a different plan: every job of one run must use the same plan. ${PASS_PLAN_OUTPUTS_OR_NEW_RUN_ID}`
      )
    case 413:
    case 431:
      return new UserError(
        `The backend refused the request as too large (HTTP ${error.status}${error.status === 431 ? ' Request Header Fields Too Large' : ' Payload Too Large'}) while ${doing}: ${longestId(error, ids)} is longer than the backend or its proxy accepts in a URL. Use shorter component and environment names (a job id is built from them) or a shorter 'run-id'. Retrying would not help.`
      )
    case 0:
      return new UserError(
        `Could not reach the backend while ${doing}${tried}: ${error.message}. Check that the service at 'backend-url' (or ORUN_BACKEND_URL) is up and that the URL is right; on self-hosted runners also check HTTPS_PROXY/NO_PROXY. Then re-run the job.`
      )
    case 429:
      return new UserError(
        `${answered}, and kept doing so through every retry${tried}. Every runner of this repository shares one rate limit (burst 20, 5 requests/s): lower the matrix's 'max-parallel', or run fewer orun runs at once.`
      )
    default:
      if (error.status >= 500 || error.code === 'BAD_RESPONSE' || error.code === 'TIMEOUT') {
        return new UserError(
          `${answered}, through every retry${tried}: the backend (or a proxy in front of it) is failing. Check the service's health at 'backend-url' (GET / answers {"status":"ok"}), then re-run the job.`
        )
      }
      return error
  }
}

/** An id as shown in a message: whole when short, else its first 40 characters and "…". */
export function shortId(id: string): string {
  return id.length > 40 ? `${id.slice(0, 40)}…` : id
}

/** "job id 'x…' (5000 characters)": the id in the failed route's path that is longest. */
function longestId(error: BackendError, ids: CallIds): string {
  const candidates: Array<[string, string]> = []
  if (ids.runId !== undefined) candidates.push(['run id', ids.runId])
  if (ids.jobId !== undefined && error.endpoint.includes('{jobId}'))
    candidates.push(['job id', ids.jobId])
  if (!candidates.length) return 'an id in the request'
  const [name, value] = candidates.reduce((a, b) =>
    encodeURIComponent(b[1]).length > encodeURIComponent(a[1]).length ? b : a
  )
  return `the ${name} '${shortId(value)}' (${value.length} characters)`
}
