import * as core from '@actions/core'
import { decodeJwt } from 'jose'
import { UserError, errorMessage } from '../common/errors.js'
import { ID_TOKEN_PERMISSION } from '../common/error-messages.js'

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
}

export const DEFAULT_AUDIENCE = 'orun'
/** Re-mint when less than this is left, so a token never expires in flight. */
const REFRESH_MARGIN_MS = 60_000
/** GitHub OIDC tokens live 5 minutes; assumed when a token says nothing of its expiry. */
const ASSUMED_LIFETIME_MS = 5 * 60_000

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
    private readonly log: (message: string) => void
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
      token = await core.getIDToken(this.audience)
    } catch (error) {
      throw new UserError(
        `Could not get a GitHub OIDC token for audience '${this.audience}': ${errorMessage(error)}. ` +
          'Pull requests from forks get no OIDC token. ' +
          PERMISSIONS_HINT
      )
    }
    // getIDToken masks it too today; masking here keeps that true whatever @actions/core does.
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
    return new OidcTokenSource(options.audience ?? DEFAULT_AUDIENCE, options.now ?? Date.now, log)
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
