/**
 * A local, in-process stand-in for the live orun-backend coordination service
 * (see ../shared/spec/backend-protocol.md), plus a GitHub-style OIDC token
 * endpoint, so the action's client can be tested end to end on loopback.
 *
 * Everything the spec states is reproduced as stated. Where the spec is silent
 * this server makes the choices below, and keeps them consistent:
 *
 * | situation                                                   | answer                                                     |
 * |-------------------------------------------------------------|------------------------------------------------------------|
 * | request pipeline order                                      | route match (404/405) -> injected fault -> decode ids      |
 * |                                                             | (bare 500) -> auth (401) -> OIDC-only check (403)          |
 * |                                                             | -> rate limit (429) -> body checks (400) -> handler        |
 * | unknown path / `POST /`                                     | 404 NOT_FOUND `Not found`                                  |
 * | known path, wrong method                                    | 405 INVALID_REQUEST `Method not allowed` (as the Worker)   |
 * | malformed percent-encoding in a matched route's id          | 500, empty body, no content type                           |
 * | `OPTIONS` anything                                          | 204 with CORS headers                                      |
 * | Authorization absent or not `Bearer `                       | 401 `Missing authorization header`                         |
 * | JWT not three segments                                      | 401 `Malformed JWT: expected 3 segments`                   |
 * | JWT header / payload not base64url JSON                     | 401 `Malformed JWT header` / `Malformed JWT payload`       |
 * | alg other than RS256                                        | 401 `Unsupported algorithm`                                |
 * | no kid / kid not in the JWKS                                | 401 `Missing key ID` / `Unknown key ID`                    |
 * | bad signature                                               | 401 `Invalid OIDC signature`                               |
 * | wrong issuer / audience                                     | 401 `Invalid issuer` / `Invalid audience`                  |
 * | exp missing or past / iat more than 60 s ahead              | 401 `Token expired` / `Token not yet valid`                |
 * | required claim missing or not a string                      | 401 `Missing required claim: <name>`                       |
 *   (checked in that order: signature first, then iss, aud, exp, iat, claims)
 * | session token on an OIDC-only route (create run too)        | 403 FORBIDDEN `OIDC authentication required`               |
 * | session token namespace                                     | the default identity's repository (`1001`)                 |
 * | rate limit                                                  | per namespace; refill = floor(elapsed/1 s) * perSecond     |
 * |                                                             | since the last refill; 401s are not counted, 403s are not  |
 * |                                                             | counted (the Worker checks roles first)                    |
 * | bad JSON body (or not an object)                            | 400 `Invalid JSON body`                                    |
 * | create: plan without checksum / jobs array                  | 400 `Missing or invalid plan`                              |
 * | create: runId present but not a non-empty string            | 400 `runId must be a non-empty string`                     |
 * | create: empty jobId                                         | 500 `Every plan job must have a non-empty jobId`           |
 * | create: deps present but not an array of strings            | 500 `Invalid deps in job "<id>"`                           |
 * | create: plan ids/deps are checked before the join check     | (so a bad plan is refused even for an existing run id)     |
 * | join (200) body                                             | `{runId, status:"running", createdAt: now}` (as the Worker)|
 * | different checksum on join                                  | 409 `Run already exists with a different plan checksum`    |
 * | unknown run on claim/heartbeat/update/runnable/job status   | 404 `Coordinator not initialized`                          |
 * | unknown run on `GET /v1/runs/:runId`                        | 404 `Run not found`                                        |
 * | unknown job (claim/heartbeat/update/status)                 | 404 `Job not found`                                        |
 * | log upload for an unknown run or a job id not in the plan   | accepted (the live service checks neither)                 |
 * | missing log                                                 | 404 `Log not found`                                        |
 * | missing runnerId / bad update status                        | 400 `Missing runnerId` / `Invalid status`                  |
 * | update order                                                | not running (`Job is not running (current: X)`) before     |
 * |                                                             | ownership (`Runner does not own this job`)                 |
 * | takeover                                                    | heartbeat older than heartbeatTimeoutMs (strictly); keeps  |
 * |                                                             | startedAt, moves runnerId, heartbeatAt = now               |
 * | run status rollup                                           | recomputed on update only (an empty plan stays running)    |
 * | GET run extra fields                                        | `namespace: {namespaceId, namespaceSlug}`, `finishedAt`    |
 * | jobDone / jobFailed                                         | number of `success` / `failed` jobs                        |
 * | run expiry (24 h)                                           | not modelled; `deleteRun()` removes a run as the cleanup   |
 * |                                                             | does                                                       |
 * | latency                                                     | every request waits `latencyMs` (default 15-40 ms, as      |
 * |                                                             | measured against the service)                              |
 * | a run just created                                          | for `initLagMs` (default 250 ms) every other route sees it |
 * |                                                             | as unknown (claim 404 `Coordinator not initialized`)       |
 * | log read after upload                                       | the previous version (or 404) for `logVisibilityMs`        |
 * |                                                             | (default 1000 ms); `storedLog()` reads what was stored     |
 * | `GET /v1/runs/:runId/jobs` of an unknown run                | 200 `{"jobs": []}` (as the service)                        |
 * | request line longer than `maxUrlBytes` (default 8192)       | 431, plain text (the proxy's answer, no JSON envelope)     |
 * | body larger than `maxBodyBytes` (default 100 MiB)           | 413, plain text                                            |
 *
 * Token endpoint (`GET /_oidc/token?<identity>&audience=X`, like GitHub's
 * ACTIONS_ID_TOKEN_REQUEST_URL): bearer must be the server's request token
 * (else 401 `Invalid request token`); without `audience` the token's aud is
 * `https://github.com/<owner>`, as GitHub does. `tokensMinted` counts only the
 * endpoint's mints, not `mintToken()` calls made by tests.
 *
 * Injected faults are matched after routing and before anything else, in
 * insertion order; the first matching fault with count left is used.
 */
import http from 'node:http'
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

export interface Identity {
  repository: string
  repository_id: string
  repository_owner: string
  repository_owner_id: string
  actor: string
}

export const defaultIdentity: Identity = {
  repository: 'acme/monorepo',
  repository_id: '1001',
  repository_owner: 'acme',
  repository_owner_id: '2002',
  actor: 'octocat'
}

export type RouteName =
  | 'health'
  | 'createRun'
  | 'getRun'
  | 'claim'
  | 'heartbeat'
  | 'update'
  | 'runnable'
  | 'listJobs'
  | 'jobStatus'
  | 'uploadLog'
  | 'readLog'
  | 'token'
  | 'jwks'
  | 'unknown'

export type Fault =
  | { kind: 'status'; status: number; count: number; body?: string; contentType?: string }
  | { kind: 'delay'; ms: number; count: number }
  | { kind: 'drop'; count: number }
  | { kind: 'rateLimit'; count: number }

export interface RecordedRequest {
  method: string
  path: string
  route: RouteName
  /** 0 when the socket was dropped without an answer */
  status: number
  at: number
  namespace?: string
  runnerId?: string
}

export interface CoordinationServerOptions {
  audience?: string
  /** Per-request latency, uniformly drawn; false for none. Default 15-40 ms, as measured. */
  latencyMs?: { min: number; max: number } | false
  /** How long a freshly created run stays invisible to every route but create. Default 250 ms. */
  initLagMs?: number
  /** How long a log read still answers the previous version after an upload. Default 1000 ms. */
  logVisibilityMs?: number
  maxUrlBytes?: number
  maxBodyBytes?: number
  heartbeatTimeoutMs?: number
  rateLimit?: { burst: number; perSecond: number } | false
  tokenLifetimeSeconds?: number
  sessionTokens?: string[]
  port?: number
}

export interface StoredJobView {
  jobId: string
  status: string
  runnerId: string | null
  startedAt: string | null
  finishedAt: string | null
  lastError: string | null
  claims: number
}

export interface CoordinationServer {
  url: string
  tokenEnv(identity?: Partial<Identity>): {
    ACTIONS_ID_TOKEN_REQUEST_URL: string
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: string
  }
  mintToken(opts?: MintTokenOptions): Promise<string>
  tokensMinted: number
  requests: RecordedRequest[]
  inject(route: RouteName | '*', fault: Fault): void
  clearFaults(): void
  setOptions(
    patch: Partial<
      Pick<
        CoordinationServerOptions,
        | 'heartbeatTimeoutMs'
        | 'rateLimit'
        | 'tokenLifetimeSeconds'
        | 'latencyMs'
        | 'initLagMs'
        | 'logVisibilityMs'
      >
    >
  ): void
  /** read-only view for tests/demo: the stored jobs of a run */
  jobsOf(runId: string, namespace?: string): StoredJobView[]
  /** The log as stored by the last upload, without the read-after-write lag of `GET logs`. */
  storedLog(runId: string, jobId: string, namespace?: string): string | undefined
  /** Resolves once a created run is visible to every route (its init lag has passed). */
  whenVisible(runId: string, namespace?: string): Promise<void>
  /** Removes a run, as the service's cleanup does about 24 h after it finished. */
  deleteRun(runId: string, namespace?: string): boolean
  close(): Promise<void>
}

export interface MintTokenOptions {
  identity?: Partial<Identity>
  audience?: string
  issuer?: string
  expiresInSeconds?: number
  kid?: string
  /** merged last: overrides any claim; a claim set to undefined is left out */
  claims?: Record<string, unknown>
  signWithForeignKey?: boolean
}

/**
 * For protocol-level tests that count requests exactly: no lag before a new run or
 * a new log is visible. Tests of whole runners keep the service's lags (the default).
 */
export const IMMEDIATE_CONSISTENCY = { initLagMs: 0, logVisibilityMs: 0 } as const

export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com'
const IDENTITY_KEYS = [
  'repository',
  'repository_id',
  'repository_owner',
  'repository_owner_id',
  'actor'
] as const
const CORS_HEADERS: Record<string, string> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, POST, DELETE, OPTIONS',
  'Access-Control-Allow-Headers': 'Authorization, Content-Type'
}

type ErrorCode =
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'RATE_LIMITED'
  | 'INVALID_REQUEST'
  | 'INTERNAL_ERROR'

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {}
  ) {
    super(message)
  }
}

/** Thrown for a malformed percent-encoding: the live service answers it with a bare 500. */
class BareInternalError extends Error {}

type JobStatus = 'pending' | 'running' | 'success' | 'failed' | 'skipped'

interface JobState {
  jobId: string
  component: string
  status: JobStatus
  deps: string[]
  runnerId: string | null
  startedAt: string | null
  finishedAt: string | null
  lastError: string | null
  heartbeatAt: string | null
  claims: number
}

interface RunState {
  runId: string
  namespaceId: string
  namespaceSlug: string
  planChecksum: string
  status: 'running' | 'completed' | 'failed' | 'cancelled'
  createdAt: string
  updatedAt: string
  finishedAt: string | null
  jobs: Map<string, JobState>
  /** Date.now() from which routes other than create see the run. */
  visibleAt: number
}

interface StoredLog {
  text: string
  /** What a read answers until visibleAt: the previous upload, or nothing. */
  previous: string | undefined
  visibleAt: number
}

type Principal =
  | { kind: 'oidc'; namespaceId: string; namespaceSlug: string }
  | { kind: 'session'; namespaceId: string; namespaceSlug: string }

interface RouteMatch {
  route: RouteName
  /** false when the path is known but the method is not */
  methodAllowed: boolean
  rawParams: string[]
}

interface ActiveFault {
  route: RouteName | '*'
  fault: Fault
  remaining: number
}

interface Bucket {
  tokens: number
  lastRefill: number
}

const ID = '([^/]+)'
const ROUTE_TABLE: Array<{ pattern: RegExp; methods: Partial<Record<string, RouteName>> }> = [
  { pattern: /^\/$/, methods: { GET: 'health' } },
  { pattern: /^\/v1\/runs$/, methods: { POST: 'createRun' } },
  { pattern: new RegExp(`^/v1/runs/${ID}$`), methods: { GET: 'getRun' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/jobs$`), methods: { GET: 'listJobs' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/runnable$`), methods: { GET: 'runnable' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/jobs/${ID}/status$`), methods: { GET: 'jobStatus' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/jobs/${ID}/claim$`), methods: { POST: 'claim' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/jobs/${ID}/heartbeat$`), methods: { POST: 'heartbeat' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/jobs/${ID}/update$`), methods: { POST: 'update' } },
  {
    pattern: new RegExp(`^/v1/runs/${ID}/logs/${ID}$`),
    methods: { POST: 'uploadLog', GET: 'readLog' }
  },
  { pattern: /^\/_oidc\/token$/, methods: { GET: 'token' } },
  { pattern: /^\/\.well-known\/jwks$/, methods: { GET: 'jwks' } }
]

/** Routes a CLI session token may use; every other authenticated route is OIDC-only. */
const SESSION_ROUTES = new Set<RouteName>(['getRun', 'listJobs', 'jobStatus', 'readLog'])

function matchRoute(method: string, rawPath: string): RouteMatch {
  // `/` is answered only to GET; the Worker has no other route there, so POST / is a 404.
  for (const entry of ROUTE_TABLE) {
    const m = entry.pattern.exec(rawPath)
    if (!m) continue
    const route = entry.methods[method]
    if (route) return { route, methodAllowed: true, rawParams: m.slice(1) }
    if (rawPath === '/') return { route: 'unknown', methodAllowed: true, rawParams: [] }
    const anyRoute = Object.values(entry.methods)[0] ?? 'unknown'
    return { route: anyRoute, methodAllowed: false, rawParams: m.slice(1) }
  }
  return { route: 'unknown', methodAllowed: true, rawParams: [] }
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'INVALID_REQUEST'
    case 401:
      return 'UNAUTHORIZED'
    case 403:
      return 'FORBIDDEN'
    case 404:
      return 'NOT_FOUND'
    case 409:
      return 'CONFLICT'
    case 429:
      return 'RATE_LIMITED'
    default:
      return 'INTERNAL_ERROR'
  }
}

function nowIso(): string {
  return new Date().toISOString()
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function parseJsonObject(body: Buffer): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    throw new ApiError(400, 'INVALID_REQUEST', 'Invalid JSON body')
  }
  if (!isRecord(parsed)) throw new ApiError(400, 'INVALID_REQUEST', 'Invalid JSON body')
  return parsed
}

function requireRunnerId(body: Record<string, unknown>): string {
  const runnerId = body.runnerId
  if (typeof runnerId !== 'string' || runnerId.length === 0) {
    throw new ApiError(400, 'INVALID_REQUEST', 'Missing runnerId')
  }
  return runnerId
}

function publicJob(job: JobState): Record<string, unknown> {
  return {
    jobId: job.jobId,
    component: job.component,
    status: job.status,
    deps: job.deps,
    runnerId: job.runnerId,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    lastError: job.lastError,
    heartbeatAt: job.heartbeatAt
  }
}

/** Validates plan jobs the way the live coordinator does; its refusals surface as 500s. */
function buildJobs(rawJobs: unknown[]): Map<string, JobState> {
  const jobs = new Map<string, JobState>()
  for (const raw of rawJobs) {
    const jobId = isRecord(raw) ? raw.jobId : undefined
    if (typeof jobId !== 'string' || jobId.length === 0) {
      throw new ApiError(500, 'INTERNAL_ERROR', 'Every plan job must have a non-empty jobId')
    }
    if (jobs.has(jobId)) throw new ApiError(500, 'INTERNAL_ERROR', `Duplicate jobId: ${jobId}`)
    const record = raw as Record<string, unknown>
    const deps = record.deps ?? []
    if (!Array.isArray(deps) || deps.some(d => typeof d !== 'string')) {
      throw new ApiError(500, 'INTERNAL_ERROR', `Invalid deps in job "${jobId}"`)
    }
    jobs.set(jobId, {
      jobId,
      component: typeof record.component === 'string' ? record.component : '',
      status: 'pending',
      deps: deps as string[],
      runnerId: null,
      startedAt: null,
      finishedAt: null,
      lastError: null,
      heartbeatAt: null,
      claims: 0
    })
  }
  for (const job of jobs.values()) {
    for (const dep of job.deps) {
      if (!jobs.has(dep)) {
        throw new ApiError(
          500,
          'INTERNAL_ERROR',
          `Dependency "${dep}" in job "${job.jobId}" does not exist in plan`
        )
      }
    }
  }
  return jobs
}

export async function startCoordinationServer(
  options: CoordinationServerOptions = {}
): Promise<CoordinationServer> {
  const audience = options.audience ?? 'orun'
  let heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 300_000
  let rateLimit: { burst: number; perSecond: number } | false =
    options.rateLimit === undefined ? { burst: 20, perSecond: 5 } : options.rateLimit
  let tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 300
  let latencyMs = options.latencyMs === undefined ? { min: 15, max: 40 } : options.latencyMs
  let initLagMs = options.initLagMs ?? 250
  let logVisibilityMs = options.logVisibilityMs ?? 1000
  const maxUrlBytes = options.maxUrlBytes ?? 8192
  const maxBodyBytes = options.maxBodyBytes ?? 100 * 1024 * 1024
  const sessionTokens = new Set(options.sessionTokens ?? [])

  const { publicKey, privateKey } = await generateKeyPair('RS256')
  const kid = `orun-test-${randomBytes(4).toString('hex')}`
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }
  const jwks: JSONWebKeySet = { keys: [publicJwk] }
  const jwksKeyGetter = createLocalJWKSet(jwks)
  let foreignKey: CryptoKey | undefined
  const requestToken = randomBytes(16).toString('hex')

  const runs = new Map<string, Map<string, RunState>>() // namespace -> runId -> run
  // Log storage is apart from the runs: the service checks an upload against neither run nor job.
  const logs = new Map<string, StoredLog>() // `${namespace}/${runId}/${jobId}` -> log
  const logKey = (ns: string, runId: string, jobId: string) => `${ns}/${runId}/${jobId}`
  const buckets = new Map<string, Bucket>()
  const faults: ActiveFault[] = []
  const requests: RecordedRequest[] = []
  const pendingTimers = new Set<NodeJS.Timeout>()
  let tokensMinted = 0
  let baseUrl = ''

  function sleep(ms: number): Promise<void> {
    return new Promise(resolve => {
      const timer = setTimeout(() => {
        pendingTimers.delete(timer)
        resolve()
      }, ms)
      pendingTimers.add(timer)
    })
  }

  async function mintToken(opts: MintTokenOptions = {}): Promise<string> {
    const identity: Identity = { ...defaultIdentity, ...opts.identity }
    const iat = Math.floor(Date.now() / 1000)
    const payload: Record<string, unknown> = {
      jti: randomUUID(),
      sub: `repo:${identity.repository}:ref:refs/heads/main`,
      aud: opts.audience ?? audience,
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
      exp: iat + (opts.expiresInSeconds ?? tokenLifetimeSeconds),
      ...opts.claims
    }
    for (const key of Object.keys(payload)) if (payload[key] === undefined) delete payload[key]
    let signingKey = privateKey
    if (opts.signWithForeignKey) {
      foreignKey ??= (await generateKeyPair('RS256')).privateKey
      signingKey = foreignKey
    }
    return new SignJWT(payload as JWTPayload)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: opts.kid ?? kid })
      .sign(signingKey)
  }

  /** Checks in the live service's order; jose does the JWKS lookup and the RSA check. */
  async function verifyOidc(token: string): Promise<Principal> {
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
      await compactVerify(token, jwksKeyGetter, { algorithms: ['RS256'] })
    } catch (error) {
      if (error instanceof joseErrors.JWKSNoMatchingKey) throw unauthorized('Unknown key ID')
      throw unauthorized('Invalid OIDC signature')
    }
    if (payload.iss !== GITHUB_ISSUER) throw unauthorized('Invalid issuer')
    const aud = payload.aud
    if (Array.isArray(aud) ? !aud.includes(audience) : aud !== audience) {
      throw unauthorized('Invalid audience')
    }
    const now = Math.floor(Date.now() / 1000)
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

  async function authenticate(req: http.IncomingMessage): Promise<Principal> {
    const header = req.headers.authorization
    if (!header?.startsWith('Bearer ')) {
      throw new ApiError(401, 'UNAUTHORIZED', 'Missing authorization header')
    }
    const token = header.slice('Bearer '.length)
    if (sessionTokens.has(token)) {
      return {
        kind: 'session',
        namespaceId: defaultIdentity.repository_id,
        namespaceSlug: defaultIdentity.repository
      }
    }
    return verifyOidc(token)
  }

  function rateLimitError(): ApiError {
    const limit = rateLimit ? rateLimit.burst : 20
    return new ApiError(429, 'RATE_LIMITED', 'Rate limit exceeded', {
      'Retry-After': '1',
      'X-RateLimit-Limit': String(limit),
      'X-RateLimit-Remaining': '0'
    })
  }

  function consumeRateToken(namespaceId: string): void {
    if (!rateLimit) return
    const now = Date.now()
    let bucket = buckets.get(namespaceId)
    if (!bucket) {
      bucket = { tokens: rateLimit.burst, lastRefill: now }
      buckets.set(namespaceId, bucket)
    }
    const refill = Math.floor((now - bucket.lastRefill) / 1000) * rateLimit.perSecond
    if (refill > 0) {
      bucket.tokens = Math.min(rateLimit.burst, bucket.tokens + refill)
      bucket.lastRefill = now
    }
    if (bucket.tokens <= 0) throw rateLimitError()
    bucket.tokens -= 1
  }

  function takeFault(route: RouteName): Fault | undefined {
    const active = faults.find(f => f.remaining > 0 && (f.route === '*' || f.route === route))
    if (!active) return undefined
    active.remaining -= 1
    return active.fault
  }

  function runOf(namespaceId: string, runId: string): RunState | undefined {
    return runs.get(namespaceId)?.get(runId)
  }

  /** A run as the routes other than create see it: not yet while it initialises. */
  function visibleRun(namespaceId: string, runId: string): RunState | undefined {
    const run = runOf(namespaceId, runId)
    return run && Date.now() >= run.visibleAt ? run : undefined
  }

  function requireCoordinator(namespaceId: string, runId: string): RunState {
    const run = visibleRun(namespaceId, runId)
    if (!run) throw new ApiError(404, 'NOT_FOUND', 'Coordinator not initialized')
    return run
  }

  function requireJob(run: RunState, jobId: string): JobState {
    const job = run.jobs.get(jobId)
    if (!job) throw new ApiError(404, 'NOT_FOUND', 'Job not found')
    return job
  }

  interface Reply {
    status: number
    headers?: Record<string, string>
    json?: unknown
    text?: string
  }

  function createRun(principal: Principal, body: Record<string, unknown>): Reply {
    const plan = body.plan
    if (
      !isRecord(plan) ||
      typeof plan.checksum !== 'string' ||
      plan.checksum.length === 0 ||
      !Array.isArray(plan.jobs)
    ) {
      throw new ApiError(400, 'INVALID_REQUEST', 'Missing or invalid plan')
    }
    let runId: string
    if (body.runId === undefined) {
      runId = randomUUID()
    } else if (typeof body.runId === 'string' && body.runId.length > 0) {
      runId = body.runId
    } else {
      throw new ApiError(400, 'INVALID_REQUEST', 'runId must be a non-empty string')
    }
    const jobs = buildJobs(plan.jobs)
    const namespaceRuns = runs.get(principal.namespaceId) ?? new Map<string, RunState>()
    runs.set(principal.namespaceId, namespaceRuns)
    const existing = namespaceRuns.get(runId)
    const now = nowIso()
    if (existing) {
      if (existing.planChecksum !== plan.checksum) {
        throw new ApiError(409, 'CONFLICT', 'Run already exists with a different plan checksum')
      }
      return { status: 200, json: { runId, status: 'running', createdAt: now } }
    }
    namespaceRuns.set(runId, {
      runId,
      namespaceId: principal.namespaceId,
      namespaceSlug: principal.namespaceSlug,
      planChecksum: plan.checksum,
      status: 'running',
      createdAt: now,
      updatedAt: now,
      finishedAt: null,
      jobs,
      visibleAt: Date.now() + initLagMs
    })
    return { status: 201, json: { runId, status: 'running', createdAt: now } }
  }

  function claim(run: RunState, jobId: string, runnerId: string): Reply {
    const job = requireJob(run, jobId)
    const now = nowIso()
    if (job.status === 'pending') {
      const depStatuses = job.deps.map(dep => run.jobs.get(dep)?.status)
      if (depStatuses.some(s => s === 'failed')) {
        return {
          status: 200,
          json: { claimed: false, currentStatus: 'pending', depsBlocked: true }
        }
      }
      if (depStatuses.some(s => s !== 'success')) {
        return {
          status: 200,
          json: { claimed: false, currentStatus: 'pending', depsWaiting: true }
        }
      }
      Object.assign(job, { status: 'running', runnerId, startedAt: now, heartbeatAt: now })
      job.claims += 1
      run.updatedAt = now
      return { status: 200, json: { claimed: true } }
    }
    if (job.status === 'running') {
      const age = job.heartbeatAt ? Date.now() - Date.parse(job.heartbeatAt) : Infinity
      if (age > heartbeatTimeoutMs) {
        job.runnerId = runnerId
        job.heartbeatAt = now
        job.claims += 1
        run.updatedAt = now
        return { status: 200, json: { claimed: true, takeover: true } }
      }
      return { status: 200, json: { claimed: false, currentStatus: 'running' } }
    }
    return { status: 200, json: { claimed: false, currentStatus: job.status } }
  }

  function update(
    run: RunState,
    jobId: string,
    runnerId: string,
    status: 'success' | 'failed',
    error: unknown
  ): Reply {
    const job = requireJob(run, jobId)
    if (job.status !== 'running') {
      throw new ApiError(400, 'INVALID_REQUEST', `Job is not running (current: ${job.status})`)
    }
    if (job.runnerId !== runnerId) {
      throw new ApiError(400, 'INVALID_REQUEST', 'Runner does not own this job')
    }
    const now = nowIso()
    job.status = status
    job.finishedAt = now
    job.lastError = typeof error === 'string' ? error : null
    run.updatedAt = now
    const all = [...run.jobs.values()]
    if (all.every(j => j.status === 'success')) run.status = 'completed'
    else if (all.some(j => j.status === 'failed')) run.status = 'failed'
    if (run.status !== 'running' && run.finishedAt === null) run.finishedAt = now
    return { status: 200, json: { ok: true } }
  }

  function runView(run: RunState): Record<string, unknown> {
    const jobs = [...run.jobs.values()]
    return {
      runId: run.runId,
      namespace: { namespaceId: run.namespaceId, namespaceSlug: run.namespaceSlug },
      status: run.status,
      planChecksum: run.planChecksum,
      createdAt: run.createdAt,
      updatedAt: run.updatedAt,
      finishedAt: run.finishedAt,
      jobTotal: jobs.length,
      jobDone: jobs.filter(j => j.status === 'success').length,
      jobFailed: jobs.filter(j => j.status === 'failed').length
    }
  }

  function mintFromEndpoint(req: http.IncomingMessage, query: URLSearchParams): Promise<Reply> {
    if (req.headers.authorization !== `Bearer ${requestToken}`) {
      throw new ApiError(401, 'UNAUTHORIZED', 'Invalid request token')
    }
    const identity: Partial<Identity> = {}
    for (const key of IDENTITY_KEYS) {
      const value = query.get(key)
      if (value !== null) identity[key] = value
    }
    const owner = identity.repository_owner ?? defaultIdentity.repository_owner
    const tokenAudience = query.get('audience') ?? `https://github.com/${owner}`
    return mintToken({ identity, audience: tokenAudience }).then(value => {
      tokensMinted += 1
      return { status: 200, json: { value } }
    })
  }

  async function dispatch(
    req: http.IncomingMessage,
    match: RouteMatch,
    query: URLSearchParams,
    rawBody: Buffer,
    record: RecordedRequest
  ): Promise<Reply> {
    if (req.method === 'OPTIONS') return { status: 204, headers: CORS_HEADERS }
    if (match.route === 'unknown') throw new ApiError(404, 'NOT_FOUND', 'Not found')
    if (!match.methodAllowed) throw new ApiError(405, 'INVALID_REQUEST', 'Method not allowed')
    let params: string[]
    try {
      params = match.rawParams.map(p => decodeURIComponent(p))
    } catch {
      throw new BareInternalError('malformed percent-encoding')
    }
    if (match.route === 'health')
      return { status: 200, json: { status: 'ok', service: 'orun-api' } }
    if (match.route === 'jwks') return { status: 200, json: jwks }
    if (match.route === 'token') return mintFromEndpoint(req, query)

    const principal = await authenticate(req)
    record.namespace = principal.namespaceId
    if (principal.kind === 'session' && !SESSION_ROUTES.has(match.route)) {
      throw new ApiError(403, 'FORBIDDEN', 'OIDC authentication required')
    }
    consumeRateToken(principal.namespaceId)

    const ns = principal.namespaceId
    const [runId = '', jobId = ''] = params
    const jsonBody = (): Record<string, unknown> => {
      const body = parseJsonObject(rawBody)
      if (typeof body.runnerId === 'string') record.runnerId = body.runnerId
      return body
    }
    switch (match.route) {
      case 'createRun':
        return createRun(principal, jsonBody())
      case 'getRun': {
        const run = visibleRun(ns, runId)
        if (!run) throw new ApiError(404, 'NOT_FOUND', 'Run not found')
        return { status: 200, json: { run: runView(run) } }
      }
      case 'claim': {
        const runnerId = requireRunnerId(jsonBody())
        return claim(requireCoordinator(ns, runId), jobId, runnerId)
      }
      case 'heartbeat': {
        const runnerId = requireRunnerId(jsonBody())
        const run = requireCoordinator(ns, runId)
        const job = requireJob(run, jobId)
        if (job.status !== 'running' || job.runnerId !== runnerId) {
          return { status: 200, json: { ok: false, abort: true } }
        }
        job.heartbeatAt = nowIso()
        run.updatedAt = job.heartbeatAt
        return { status: 200, json: { ok: true } }
      }
      case 'update': {
        const body = jsonBody()
        // body checks come first: the Worker validates the body before asking the coordinator
        const runnerId = requireRunnerId(body)
        const status = body.status
        if (status !== 'success' && status !== 'failed') {
          throw new ApiError(400, 'INVALID_REQUEST', 'Invalid status')
        }
        return update(requireCoordinator(ns, runId), jobId, runnerId, status, body.error)
      }
      case 'runnable': {
        const run = requireCoordinator(ns, runId)
        const jobs = [...run.jobs.values()]
          .filter(j => j.status === 'pending')
          .filter(j => j.deps.every(d => run.jobs.get(d)?.status === 'success'))
          .map(j => j.jobId)
        return { status: 200, json: { jobs } }
      }
      case 'listJobs': {
        // The service answers an unknown run with an empty list, not 404.
        const run = visibleRun(ns, runId)
        const jobs = [...(run?.jobs.values() ?? [])].map(j => ({ ...publicJob(j), logRef: null }))
        return { status: 200, json: { jobs } }
      }
      case 'jobStatus':
        return { status: 200, json: publicJob(requireJob(requireCoordinator(ns, runId), jobId)) }
      case 'uploadLog': {
        const now = Date.now()
        const before = logs.get(logKey(ns, runId, jobId))
        logs.set(logKey(ns, runId, jobId), {
          text: rawBody.toString('utf8'),
          previous: before && now >= before.visibleAt ? before.text : before?.previous,
          visibleAt: now + logVisibilityMs
        })
        return { status: 200, json: { ok: true, logRef: `${ns}/runs/${runId}/logs/${jobId}.log` } }
      }
      case 'readLog': {
        const stored = logs.get(logKey(ns, runId, jobId))
        const log = stored && (Date.now() >= stored.visibleAt ? stored.text : stored.previous)
        if (log === undefined) throw new ApiError(404, 'NOT_FOUND', 'Log not found')
        return {
          status: 200,
          headers: { 'Content-Type': 'text/plain; charset=utf-8' },
          text: log
        }
      }
      default:
        throw new ApiError(404, 'NOT_FOUND', 'Not found')
    }
  }

  function send(res: http.ServerResponse, record: RecordedRequest, reply: Reply): void {
    record.status = reply.status
    if (res.destroyed || res.writableEnded) return
    const headers: Record<string, string> = { ...CORS_HEADERS, ...reply.headers }
    let payload = ''
    if (reply.json !== undefined) {
      headers['Content-Type'] ??= 'application/json'
      payload = JSON.stringify(reply.json)
    } else if (reply.text !== undefined) {
      payload = reply.text
    }
    res.writeHead(reply.status, headers)
    res.end(payload)
  }

  function errorReply(error: ApiError): Reply {
    return {
      status: error.status,
      headers: error.headers,
      json: { error: error.message, code: error.code }
    }
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET'
    const rawUrl = req.url ?? '/'
    const queryAt = rawUrl.indexOf('?')
    const rawPath = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt)
    const query = new URLSearchParams(queryAt === -1 ? '' : rawUrl.slice(queryAt + 1))
    const match = matchRoute(method, rawPath)
    const record: RecordedRequest = {
      method,
      path: rawPath,
      route: match.route,
      status: 0,
      at: Date.now()
    }
    requests.push(record)

    const fault = takeFault(match.route)
    if (fault?.kind === 'drop') {
      req.socket.destroy()
      return
    }
    if (fault?.kind === 'status') {
      await readBody(req)
      const reply: Reply =
        fault.body === undefined
          ? {
              status: fault.status,
              json: { error: 'Injected fault', code: codeForStatus(fault.status) },
              headers: fault.contentType ? { 'Content-Type': fault.contentType } : undefined
            }
          : {
              status: fault.status,
              text: fault.body,
              headers: { 'Content-Type': fault.contentType ?? 'text/plain; charset=utf-8' }
            }
      send(res, record, reply)
      return
    }
    if (fault?.kind === 'rateLimit') {
      await readBody(req)
      send(res, record, errorReply(rateLimitError()))
      return
    }
    if (fault?.kind === 'delay') await sleep(fault.ms)
    if (latencyMs) await sleep(latencyMs.min + Math.random() * (latencyMs.max - latencyMs.min))
    // The service's proxy refuses oversized requests before the Worker sees them.
    if (Buffer.byteLength(rawUrl) > maxUrlBytes) {
      await readBody(req)
      send(res, record, {
        status: 431,
        text: 'Request Header Fields Too Large',
        headers: { 'Content-Type': 'text/plain; charset=utf-8' }
      })
      return
    }

    const rawBody = await readBody(req)
    if (rawBody.length > maxBodyBytes) {
      send(res, record, {
        status: 413,
        text: 'Payload Too Large',
        headers: { 'Content-Type': 'text/plain; charset=utf-8' }
      })
      return
    }
    try {
      send(res, record, await dispatch(req, match, query, rawBody, record))
    } catch (error) {
      if (error instanceof BareInternalError) {
        record.status = 500
        if (!res.destroyed) {
          res.writeHead(500)
          res.end()
        }
      } else if (error instanceof ApiError) {
        send(res, record, errorReply(error))
      } else {
        const message = error instanceof Error ? error.message : 'Internal server error'
        send(res, record, errorReply(new ApiError(500, 'INTERNAL_ERROR', message)))
      }
    }
  }

  /** A run by id in the given namespace, else the default one, else any (tests rarely care). */
  function findRun(runId: string, namespace?: string): RunState | undefined {
    return namespace !== undefined
      ? runOf(namespace, runId)
      : (runOf(defaultIdentity.repository_id, runId) ??
          [...runs.values()].find(m => m.has(runId))?.get(runId))
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.destroyed) res.destroy()
    })
  })
  // Longer than undici's idle pool, so a reused keep-alive socket is never closed under a request.
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address')
  baseUrl = `http://127.0.0.1:${address.port}`

  return {
    url: baseUrl,
    tokenEnv(identity = {}) {
      const merged: Identity = { ...defaultIdentity, ...identity }
      const query = new URLSearchParams(IDENTITY_KEYS.map(k => [k, merged[k]] as [string, string]))
      // @actions/core appends `&audience=...`, so the URL must already carry a query.
      return {
        ACTIONS_ID_TOKEN_REQUEST_URL: `${baseUrl}/_oidc/token?${query.toString()}`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken
      }
    },
    mintToken,
    get tokensMinted() {
      return tokensMinted
    },
    requests,
    inject(route, fault) {
      faults.push({ route, fault, remaining: fault.count })
    },
    clearFaults() {
      faults.length = 0
    },
    setOptions(patch) {
      if (patch.heartbeatTimeoutMs !== undefined) heartbeatTimeoutMs = patch.heartbeatTimeoutMs
      if (patch.tokenLifetimeSeconds !== undefined)
        tokenLifetimeSeconds = patch.tokenLifetimeSeconds
      if (patch.latencyMs !== undefined) latencyMs = patch.latencyMs
      if (patch.initLagMs !== undefined) initLagMs = patch.initLagMs
      if (patch.logVisibilityMs !== undefined) logVisibilityMs = patch.logVisibilityMs
      if (patch.rateLimit !== undefined) {
        rateLimit = patch.rateLimit
        buckets.clear() // a new limit starts every namespace with a full bucket
      }
    },
    jobsOf(runId, namespace) {
      const run = findRun(runId, namespace)
      if (!run) return []
      return [...run.jobs.values()].map(j => ({
        jobId: j.jobId,
        status: j.status,
        runnerId: j.runnerId,
        startedAt: j.startedAt,
        finishedAt: j.finishedAt,
        lastError: j.lastError,
        claims: j.claims
      }))
    },
    storedLog(runId, jobId, namespace) {
      const run = findRun(runId, namespace)
      return logs.get(
        logKey(run?.namespaceId ?? namespace ?? defaultIdentity.repository_id, runId, jobId)
      )?.text
    },
    async whenVisible(runId, namespace) {
      const run = findRun(runId, namespace)
      if (!run) throw new Error(`run ${runId} was never created`)
      const wait = run.visibleAt - Date.now()
      if (wait > 0) await sleep(wait)
    },
    deleteRun(runId, namespace) {
      const run = findRun(runId, namespace)
      if (!run) return false
      for (const key of logs.keys())
        if (key.startsWith(`${run.namespaceId}/${runId}/`)) logs.delete(key)
      return runs.get(run.namespaceId)!.delete(runId)
    },
    close() {
      for (const timer of pendingTimers) clearTimeout(timer)
      pendingTimers.clear()
      return new Promise<void>(resolve => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    }
  }
}
