import * as core from '@actions/core'
import { HttpClient } from '@actions/http-client'
import { decodeJwt } from 'jose'
import { UserError, errorMessage } from '../common/errors.js'
import { scaledBudget, withRetry, type Sleep } from '../common/retry.js'
import { ID_TOKEN_PERMISSION } from '../common/error-messages.js'
import { formatDuration, preview } from './errors.js'

export interface TokenSource {
  readonly kind: 'oidc' | 'static'
  token(): Promise<string>
  /** forget the cached token (after a 401) */
  invalidate(): void
  readonly mints: number
  /** every token handed out, for log redaction */
  readonly issued: readonly string[]
}

export interface AuthOptions {
  /** OIDC audience; default 'orun' (the backend's configured audience). */
  audience?: string
  /** The `token` input; else env ORUN_TOKEN. */
  staticToken?: string
  now?: () => number
  log?: (message: string) => void
  /** How long a mint keeps retrying transient failures of the token endpoint; default 2 min. */
  mintBudgetMs?: number
  /** One token request; default 20 s. */
  mintTimeoutMs?: number
  sleep?: Sleep
  /** Ends a mint's retries at once (the runner is stopping). */
  signal?: AbortSignal
}

export const DEFAULT_AUDIENCE = 'orun'
/** Re-mint when less than this is left, so a token never expires in flight. */
const REFRESH_MARGIN_MS = 60_000
/** GitHub OIDC tokens live 5 minutes; assumed when a token says nothing of its expiry. */
const ASSUMED_LIFETIME_MS = 5 * 60_000
const MINT_BUDGET_MS = 2 * 60_000
const MINT_TIMEOUT_MS = 20_000

const PERMISSIONS_HINT =
  'Give the job permission to request one:\n\n' +
  '    permissions:\n' +
  '      id-token: write\n' +
  '      contents: read\n\n' +
  "or set the action's `token` input (or the ORUN_TOKEN environment variable) to a static token."

function oidcOffered(): boolean {
  return Boolean(
    process.env['ACTIONS_ID_TOKEN_REQUEST_URL'] && process.env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']
  )
}

/**
 * How long a freshly minted token can be used, measured on the local clock.
 * exp - iat is the token's lifetime and does not depend on clock skew between
 * this runner and the issuer; exp alone is the fallback. iat is truncated to
 * whole seconds, so the token may be up to a second older than it says.
 */
function lifetimeMs(token: string, mintedAt: number): number {
  let claims: { exp?: number; iat?: number }
  try {
    claims = decodeJwt(token)
  } catch {
    return ASSUMED_LIFETIME_MS
  }
  if (typeof claims.exp !== 'number') return ASSUMED_LIFETIME_MS
  if (typeof claims.iat === 'number') return Math.max(0, (claims.exp - claims.iat - 1) * 1000)
  return claims.exp * 1000 - mintedAt
}

class OidcTokenSource implements TokenSource {
  readonly kind = 'oidc' as const
  mints = 0
  readonly issued: string[] = []
  private cached?: { token: string; mintedAt: number; expiresAt: number }
  private inFlight?: Promise<string>

  constructor(
    private readonly audience: string,
    private readonly now: () => number,
    private readonly log: (message: string) => void,
    private readonly retry: {
      budgetMs: number
      timeoutMs: number
      sleep?: Sleep
      signal?: AbortSignal
    }
  ) {}

  token(): Promise<string> {
    if (this.cached && !this.needsRefresh(this.cached)) return Promise.resolve(this.cached.token)
    // Concurrent callers share one mint rather than each asking the runner for a token.
    this.inFlight ??= this.mint().finally(() => {
      this.inFlight = undefined
    })
    return this.inFlight
  }

  invalidate(): void {
    this.cached = undefined
  }

  /**
   * Refresh when less than 60 s remain; for tokens that live barely longer than
   * that (test servers), at half their lifetime, so they are not minted per call.
   */
  private needsRefresh(entry: { mintedAt: number; expiresAt: number }): boolean {
    const margin = Math.min(REFRESH_MARGIN_MS, (entry.expiresAt - entry.mintedAt) / 2)
    return entry.expiresAt - this.now() < margin
  }

  private async mint(): Promise<string> {
    const mintedAt = this.now()
    let token: string
    try {
      token = await withRetry(() => requestIdToken(this.audience, this.retry.timeoutMs), {
        budgetMs: this.retry.budgetMs,
        baseMs: 1000,
        capMs: 10_000,
        sleep: this.retry.sleep,
        signal: this.retry.signal,
        onAbort: () =>
          new UserError('Cancelled while requesting a GitHub OIDC token (the runner is stopping).'),
        decide: error => ({ retry: error instanceof TokenRequestError && error.transient }),
        onRetry: (error, _attempt, delayMs) =>
          this.log(`${errorMessage(error)}; retrying in ${delayMs} ms.`),
        onGiveUp: (error, spent) => {
          if (error instanceof TokenRequestError && spent.attempts > 1)
            error.retried = ` (${spent.attempts} attempts over ${formatDuration(spent.elapsedMs)})`
        }
      })
    } catch (error) {
      throw explainMintFailure(this.audience, error)
    }
    // Masked before anything could print it.
    core.setSecret(token)
    this.mints++
    this.issued.push(token)
    const lifetime = lifetimeMs(token, mintedAt)
    this.cached = { token, mintedAt, expiresAt: mintedAt + lifetime }
    this.log(
      `Minted a GitHub OIDC token for audience '${this.audience}' (valid ${Math.round(lifetime / 1000)} s).`
    )
    return token
  }
}

class StaticTokenSource implements TokenSource {
  readonly kind = 'static' as const
  readonly mints = 0
  readonly issued: readonly string[]

  constructor(private readonly value: string) {
    this.issued = [value]
  }

  token(): Promise<string> {
    return Promise.resolve(this.value)
  }

  /** A static token cannot be re-minted; there is nothing to forget. */
  invalidate(): void {}
}

/**
 * OIDC when the runner offers it (the job has `id-token: write`), else a static
 * token with a notice, else a UserError telling how to get either.
 */
export function createTokenSource(options: AuthOptions = {}): TokenSource {
  const log = options.log ?? core.debug
  if (oidcOffered()) {
    return new OidcTokenSource(options.audience ?? DEFAULT_AUDIENCE, options.now ?? Date.now, log, {
      budgetMs: options.mintBudgetMs ?? scaledBudget(MINT_BUDGET_MS),
      timeoutMs: options.mintTimeoutMs ?? scaledBudget(MINT_TIMEOUT_MS, 5_000),
      sleep: options.sleep,
      signal: options.signal
    })
  }
  const staticToken = options.staticToken || process.env['ORUN_TOKEN']
  if (staticToken) {
    core.setSecret(staticToken)
    core.notice(
      'orun-backend: no GitHub OIDC token is available, so a static token is used. ' +
        'The live orun-backend accepts static tokens only on read routes (run, jobs, job status, logs); ' +
        `claim, heartbeat, update, runnable and log upload need OIDC (${ID_TOKEN_PERMISSION}).`
    )
    return new StaticTokenSource(staticToken)
  }
  throw new UserError(
    'No token for orun-backend: this job cannot request a GitHub OIDC token ' +
      '(ACTIONS_ID_TOKEN_REQUEST_URL is not set) and no static token was given. ' +
      PERMISSIONS_HINT
  )
}

/** A failed request to the runner's token endpoint; status 0 when no answer came. */
class TokenRequestError extends Error {
  retried = ''
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message)
  }

  /** Network failures, timeouts, 408, 429 and 5xx pass; the answers below do not. */
  get transient(): boolean {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500
  }
}

/**
 * One request to ACTIONS_ID_TOKEN_REQUEST_URL, as @actions/core's getIDToken
 * sends it. Made here rather than through getIDToken because that one reports
 * the answer's status only inside its message text and can wait minutes on a
 * connection that never answers: retrying needs the status and a bound.
 */
async function requestIdToken(audience: string, timeoutMs: number): Promise<string> {
  const url = `${process.env['ACTIONS_ID_TOKEN_REQUEST_URL']}&audience=${encodeURIComponent(audience)}`
  const http = new HttpClient('orun-action', [], {
    allowRetries: false,
    socketTimeout: timeoutMs,
    keepAlive: true
  })
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new TokenRequestError(
            0,
            `The token endpoint did not answer within ${Math.round(timeoutMs / 1000)} s`
          )
        ),
      timeoutMs
    )
  })
  try {
    const response = await Promise.race([
      http.get(url, {
        Authorization: `Bearer ${process.env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}`,
        Accept: 'application/json'
      }),
      timeout
    ])
    const text = await Promise.race([response.readBody(), timeout])
    const status = response.message.statusCode ?? 0
    if (status !== 200) {
      throw new TokenRequestError(
        status,
        `The token endpoint answered HTTP ${status}${text.trim() ? `: ${preview(text)}` : ''}`
      )
    }
    let value: unknown
    try {
      value = (JSON.parse(text) as { value?: unknown }).value
    } catch {
      value = undefined
    }
    if (typeof value !== 'string' || !value) {
      throw new TokenRequestError(status, 'The token endpoint answered 200 without a token')
    }
    return value
  } catch (error) {
    if (error instanceof TokenRequestError) throw error
    throw new TokenRequestError(
      0,
      `The token endpoint could not be reached: ${errorMessage(error)}`
    )
  } finally {
    clearTimeout(timer)
    timeout.catch(() => {})
    http.dispose()
  }
}

/** Permissions are blamed only for answers that mean them; an outage is called an outage. */
function explainMintFailure(audience: string, error: unknown): unknown {
  if (error instanceof UserError || !(error instanceof TokenRequestError)) return error
  const what = `Could not get a GitHub OIDC token for audience '${audience}': ${error.message}${error.retried}.`
  if (error.status === 401 || error.status === 403) {
    return new UserError(
      `${what} The runner refused the request: pull requests from forks get no OIDC token, and the job needs permission to request one. ` +
        PERMISSIONS_HINT
    )
  }
  if (error.transient) {
    return new UserError(
      `${what} The runner's token service kept failing: this is on GitHub's side, not a permission problem. Check https://www.githubstatus.com and re-run the job.`
    )
  }
  return new UserError(
    `${what} That answer was not expected from GitHub's token service; re-run the job, and report it if it persists.`
  )
}
