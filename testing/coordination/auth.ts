/**
 * A GitHub-style OIDC issuer (the token endpoint behind ACTIONS_ID_TOKEN_REQUEST_URL and its
 * JWKS) and the backend's authentication: session tokens, then OIDC checks in the live
 * service's order (jose does the JWKS lookup and the RSA check).
 */
import type http from 'node:http'
import { randomBytes, randomUUID } from 'node:crypto'
import {
  SignJWT,
  compactVerify,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JSONWebKeySet,
  type JWTPayload
} from 'jose'
import { ApiError } from './api-error.js'
import {
  GITHUB_ISSUER,
  IDENTITY_KEYS,
  defaultIdentity,
  type Identity,
  type MintTokenOptions
} from './types.js'

/** `session`: an Orun CLI session; `dashboard`: a dashboard session (read routes only). */
export type Principal =
  | { kind: 'oidc'; namespaceId: string; namespaceSlug: string }
  | { kind: 'session'; namespaceId: string; namespaceSlug: string }
  | { kind: 'dashboard'; namespaceId: string; namespaceSlug: string }

export interface IssuerOptions {
  audience: string
  tokenLifetimeSeconds: number
  sessionTokens: string[]
  dashboardSessionTokens?: string[]
  /** epoch ms */
  clock: () => number
}

export class OidcIssuer {
  /** The bearer the token endpoint wants (ACTIONS_ID_TOKEN_REQUEST_TOKEN). */
  readonly requestToken = randomBytes(16).toString('hex')
  /** Tokens minted by the endpoint (not by mint() calls made by tests). */
  tokensMinted = 0
  tokenLifetimeSeconds: number
  private foreignKey: CryptoKey | undefined
  private readonly audience: string
  private readonly sessionTokens: Set<string>
  private readonly dashboardSessionTokens: Set<string>
  private readonly keyGetter: ReturnType<typeof createLocalJWKSet>
  private readonly clock: () => number

  private constructor(
    options: IssuerOptions,
    private readonly kid: string,
    private readonly privateKey: CryptoKey,
    readonly jwks: JSONWebKeySet
  ) {
    this.audience = options.audience
    this.tokenLifetimeSeconds = options.tokenLifetimeSeconds
    this.sessionTokens = new Set(options.sessionTokens)
    this.dashboardSessionTokens = new Set(options.dashboardSessionTokens ?? [])
    this.keyGetter = createLocalJWKSet(jwks)
    this.clock = options.clock
  }

  static async create(options: IssuerOptions): Promise<OidcIssuer> {
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    const kid = `orun-test-${randomBytes(4).toString('hex')}`
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }
    return new OidcIssuer(options, kid, privateKey, { keys: [publicJwk] })
  }

  async mint(opts: MintTokenOptions = {}): Promise<string> {
    const identity: Identity = { ...defaultIdentity, ...opts.identity }
    const iat = Math.floor(this.clock() / 1000)
    const payload: Record<string, unknown> = {
      jti: randomUUID(),
      sub: `repo:${identity.repository}:ref:refs/heads/main`,
      aud: opts.audience ?? this.audience,
      ref: 'refs/heads/main',
      repository: identity.repository,
      repository_id: identity.repository_id,
      repository_owner: identity.repository_owner,
      repository_owner_id: identity.repository_owner_id,
      actor: identity.actor,
      event_name: 'push',
      iss: opts.issuer ?? GITHUB_ISSUER,
      nbf: iat,
      iat,
      exp: iat + (opts.expiresInSeconds ?? this.tokenLifetimeSeconds),
      ...opts.claims
    }
    for (const key of Object.keys(payload)) if (payload[key] === undefined) delete payload[key]
    let signingKey = this.privateKey
    if (opts.signWithForeignKey) {
      this.foreignKey ??= (await generateKeyPair('RS256')).privateKey
      signingKey = this.foreignKey
    }
    return new SignJWT(payload as JWTPayload)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: opts.kid ?? this.kid })
      .sign(signingKey)
  }

  /** The token endpoint: `GET /_oidc/token?<identity>&audience=X`, like GitHub's. */
  async mintFromEndpoint(
    req: http.IncomingMessage,
    query: URLSearchParams
  ): Promise<{ value: string }> {
    if (req.headers.authorization !== `Bearer ${this.requestToken}`) {
      throw new ApiError(401, 'UNAUTHORIZED', 'Invalid request token')
    }
    const identity: Partial<Identity> = {}
    for (const key of IDENTITY_KEYS) {
      const value = query.get(key)
      if (value !== null) identity[key] = value
    }
    const owner = identity.repository_owner ?? defaultIdentity.repository_owner
    // Without audience GitHub's token is for https://github.com/<owner>.
    const tokenAudience = query.get('audience') ?? `https://github.com/${owner}`
    const value = await this.mint({ identity, audience: tokenAudience })
    this.tokensMinted += 1
    return { value }
  }

  /** Who a request is, from its Authorization header; 401 ApiError when nobody. */
  async authenticate(req: http.IncomingMessage): Promise<Principal> {
    const header = req.headers.authorization
    if (!header?.startsWith('Bearer ')) {
      throw new ApiError(401, 'UNAUTHORIZED', 'Missing authorization header')
    }
    const token = header.slice('Bearer '.length)
    const session = this.sessionTokens.has(token)
    if (session || this.dashboardSessionTokens.has(token)) {
      return {
        kind: session ? 'session' : 'dashboard',
        namespaceId: defaultIdentity.repository_id,
        namespaceSlug: defaultIdentity.repository
      }
    }
    return this.verify(token)
  }

  /** Checks in the live service's order: shape, alg, kid, signature, iss, aud, exp, iat, claims. */
  private async verify(token: string): Promise<Principal> {
    const unauthorized = (message: string): ApiError => new ApiError(401, 'UNAUTHORIZED', message)
    if (token.split('.').length !== 3) throw unauthorized('Malformed JWT: expected 3 segments')
    let header: ReturnType<typeof decodeProtectedHeader>
    try {
      header = decodeProtectedHeader(token)
    } catch {
      throw unauthorized('Malformed JWT header')
    }
    let payload: JWTPayload
    try {
      payload = decodeJwt(token)
    } catch {
      throw unauthorized('Malformed JWT payload')
    }
    if (header.alg !== 'RS256') throw unauthorized('Unsupported algorithm')
    if (!header.kid) throw unauthorized('Missing key ID')
    try {
      await compactVerify(token, this.keyGetter, { algorithms: ['RS256'] })
    } catch (error) {
      if (error instanceof joseErrors.JWKSNoMatchingKey) throw unauthorized('Unknown key ID')
      throw unauthorized('Invalid OIDC signature')
    }
    if (payload.iss !== GITHUB_ISSUER) throw unauthorized('Invalid issuer')
    const aud = payload.aud
    if (Array.isArray(aud) ? !aud.includes(this.audience) : aud !== this.audience) {
      throw unauthorized('Invalid audience')
    }
    const now = Math.floor(this.clock() / 1000)
    if (typeof payload.exp !== 'number' || payload.exp <= now) throw unauthorized('Token expired')
    if (typeof payload.iat !== 'number' || payload.iat > now + 60) {
      throw unauthorized('Token not yet valid')
    }
    for (const claim of IDENTITY_KEYS) {
      const value = payload[claim]
      if (typeof value !== 'string' || value.length === 0) {
        throw unauthorized(`Missing required claim: ${claim}`)
      }
    }
    return {
      kind: 'oidc',
      namespaceId: payload.repository_id as string,
      namespaceSlug: payload.repository as string
    }
  }
}
