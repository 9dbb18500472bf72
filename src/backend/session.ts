import * as core from '@actions/core'
import { UserError } from '../common/errors.js'
import type { Plan } from '../plan/model.js'
import { createTokenSource, type TokenSource } from './auth.js'
import { BackendClient, BackendError } from './client.js'
import { toBackendPlan } from './plan.js'
import type { CreateRunResult } from './types.js'
import { ID_TOKEN_PERMISSION, PASS_PLAN_OUTPUTS_OR_NEW_RUN_ID } from '../common/error-messages.js'

export interface BackendSettings {
  backendUrl: string
  audience: string
  token?: string
}

/** One token source and one client per action process, so tokens are cached across every call. */
export function connectBackend(settings: BackendSettings): {
  client: BackendClient
  tokens: TokenSource
} {
  const tokens = createTokenSource({
    audience: settings.audience,
    staticToken: settings.token,
    log: message => core.info(message)
  })
  const client = new BackendClient({
    baseUrl: settings.backendUrl,
    tokens,
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
    throw explainBackendError(error, `joining run ${runId}`)
  }
}

/** Turns backend answers a user can fix into actionable UserErrors; other errors pass through. */
export function explainBackendError(error: unknown, doing: string): unknown {
  if (!(error instanceof BackendError)) return error
  const answered = `The backend answered ${error.status} ${error.code} "${error.message}" while ${doing}`
  switch (error.status) {
    case 401:
      return new UserError(
        `${answered}. The token was refused: check that the backend's audience matches the 'audience' input (default orun) and that the job has ${ID_TOKEN_PERMISSION}.`
      )
    case 403:
      return new UserError(
        `${answered}. This repository may not use that run, or the backend accepts only GitHub OIDC tokens for this call: remove the static 'token'/ORUN_TOKEN and grant ${ID_TOKEN_PERMISSION}.`
      )
    case 409:
      return new UserError(
        `${answered}. The run id is already used by a different plan: every job of one run must use the same plan. ${PASS_PLAN_OUTPUTS_OR_NEW_RUN_ID}`
      )
    case 0:
      return new UserError(
        `Could not reach the backend while ${doing}: ${error.message}. Check 'backend-url' (or ORUN_BACKEND_URL) and, on self-hosted runners, HTTPS_PROXY/NO_PROXY.`
      )
    case 429:
      return new UserError(
        `${answered}, and kept doing so through every retry. Every runner of this repository shares one rate limit (burst 20, 5 requests/s): lower the matrix's 'max-parallel', or run fewer orun runs at once.`
      )
    default:
      if (error.status >= 500 || error.code === 'BAD_RESPONSE' || error.code === 'TIMEOUT') {
        return new UserError(
          `${answered}, through every retry: the backend (or a proxy in front of it) is failing. Check the service's health at 'backend-url', then re-run the job.`
        )
      }
      return error
  }
}
