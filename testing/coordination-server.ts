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
 * | 2026-05-08: CLI session on claim/update/heartbeat/runnable/ | accepted; a dashboard session there gets 403 FORBIDDEN     |
 * |   log upload                                                | `OIDC or CLI session authentication required`              |
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
 * | run deletion (both builds)                                  | `deletionDelayMs` (default 24 h) after the run ended (or   |
 * |                                                             | after its drop to the copy), run and logs are deleted;     |
 * |                                                             | `deleteRun()` does it at once                              |
 * | 2026-05-08 alarm                                            | every `sweepPeriodMs` (default 300 s) per live run, from   |
 * |                                                             | its creation: idle (no request reached the live run for    |
 * |                                                             | `idleDropMs`, default 240 s) -> drop to the copy; else     |
 * |                                                             | sweep: running jobs silent > heartbeat timeout -> `failed` |
 * |                                                             | `runner heartbeat timeout` (runnerId kept)                 |
 * | 2026-05-08 dependent's claim                                | a claim of a pending job with deps sweeps first; a claim   |
 * |                                                             | of the stale job itself is still a takeover                |
 * | 2026-05-08 copy                                             | GET run/jobs/job status answer it (running -> `pending`    |
 * |                                                             | with runnerId/startedAt null, deps `[]`, heartbeatAt null, |
 * |                                                             | run gets expiresAt = finishedAt + 24 h); claim, heartbeat, |
 * |                                                             | update, runnable 404 `Coordinator not initialized`;        |
 * |                                                             | create with the same id (any checksum) 201, a fresh run    |
 * | timers                                                      | alarms and cleanup run on the server's clock (`now`),      |
 * |                                                             | checked every few ms to 1 s of real time and by `tick()`   |
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
 *
 * One module per concern under ./coordination/: the state machine (state.ts), the OIDC
 * issuer and authentication (auth.ts), the rate limit (rate-limit.ts), injected faults
 * (faults.ts), routes (routes.ts); this file is the HTTP server that puts them together.
 */
import http from 'node:http'
import { ApiError, BareInternalError, codeForStatus } from './coordination/api-error.js'
import { OidcIssuer } from './coordination/auth.js'
import { FaultInjector } from './coordination/faults.js'
import { RateLimiter } from './coordination/rate-limit.js'
import {
  OIDC_OR_CLI_SESSION_ROUTES,
  SESSION_ROUTES,
  matchRoute,
  type RouteMatch
} from './coordination/routes.js'
import { DEFAULT_BUILD_RULES, RunStore, isRecord, type Reply } from './coordination/state.js'
import {
  BUILD_RATE_LIMITS,
  DEFAULT_BACKEND_BUILD,
  IDENTITY_KEYS,
  defaultIdentity,
  type CoordinationServer,
  type CoordinationServerOptions,
  type Identity,
  type RecordedRequest
} from './coordination/types.js'

export { HEARTBEAT_TIMEOUT_ERROR } from './coordination/state.js'
export {
  BACKEND_BUILDS,
  BUILD_RATE_LIMITS,
  DEFAULT_BACKEND_BUILD,
  isBackendBuild,
  type BackendBuild,
  type RunPhase,
  GITHUB_ISSUER,
  IMMEDIATE_CONSISTENCY,
  defaultIdentity,
  type CoordinationServer,
  type CoordinationServerOptions,
  type Fault,
  type Identity,
  type MintTokenOptions,
  type RecordedRequest,
  type RouteName,
  type StoredJobView
} from './coordination/types.js'

const CORS_HEADERS: Record<string, string> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, POST, DELETE, OPTIONS',
  'Access-Control-Allow-Headers': 'Authorization, Content-Type'
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

/** The runnerId of a JSON body, when it has one (never throws). */
function runnerIdIn(body: Buffer): string | undefined {
  if (!body.length || body[0] !== 0x7b) return undefined
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'))
    const id = (parsed as { runnerId?: unknown }).runnerId
    return typeof id === 'string' ? id : undefined
  } catch {
    return undefined
  }
}

function requireRunnerId(body: Record<string, unknown>): string {
  const runnerId = body.runnerId
  if (typeof runnerId !== 'string' || runnerId.length === 0) {
    throw new ApiError(400, 'INVALID_REQUEST', 'Missing runnerId')
  }
  return runnerId
}

function errorReply(error: ApiError): Reply {
  return {
    status: error.status,
    headers: error.headers,
    json: { error: error.message, code: error.code }
  }
}

export async function startCoordinationServer(
  options: CoordinationServerOptions = {}
): Promise<CoordinationServer> {
  const build = options.build ?? DEFAULT_BACKEND_BUILD
  let heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 300_000
  const clock = options.now ?? Date.now
  let latencyMs = options.latencyMs === undefined ? { min: 15, max: 40 } : options.latencyMs
  let initLagMs = options.initLagMs ?? 250
  let logVisibilityMs = options.logVisibilityMs ?? 1000
  const maxUrlBytes = options.maxUrlBytes ?? 8192
  const maxBodyBytes = options.maxBodyBytes ?? 100 * 1024 * 1024
  const issuer = await OidcIssuer.create({
    audience: options.audience ?? 'orun',
    tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 300,
    sessionTokens: options.sessionTokens ?? [],
    dashboardSessionTokens: options.dashboardSessionTokens ?? [],
    clock
  })
  const rateLimiter = new RateLimiter(
    options.rateLimit === undefined ? BUILD_RATE_LIMITS[build] : options.rateLimit,
    clock
  )
  const faults = new FaultInjector()
  const rules = {
    build,
    sweepPeriodMs: options.sweepPeriodMs ?? DEFAULT_BUILD_RULES.sweepPeriodMs,
    idleDropMs: options.idleDropMs ?? DEFAULT_BUILD_RULES.idleDropMs,
    deletionDelayMs: options.deletionDelayMs ?? DEFAULT_BUILD_RULES.deletionDelayMs
  }
  const store = new RunStore(
    () => heartbeatTimeoutMs,
    clock,
    { initLagMs: () => initLagMs, logVisibilityMs: () => logVisibilityMs },
    rules
  )
  // Alarms and the cleanup run on the server's clock; real time only decides how often to look.
  const shortestPeriod = Math.min(
    rules.deletionDelayMs,
    build === '2026-05-08' ? Math.min(rules.sweepPeriodMs, rules.idleDropMs) : Infinity
  )
  const timerTicker =
    options.autoTick === false
      ? undefined
      : setInterval(() => store.tick(), Math.max(5, Math.min(1000, shortestPeriod / 10)))
  timerTicker?.unref()
  const requests: RecordedRequest[] = []
  const pendingTimers = new Set<NodeJS.Timeout>()
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
    if (match.route === 'jwks') return { status: 200, json: issuer.jwks }
    if (match.route === 'token')
      return { status: 200, json: await issuer.mintFromEndpoint(req, query) }

    const principal = await issuer.authenticate(req)
    record.namespace = principal.namespaceId
    if (principal.kind !== 'oidc' && !SESSION_ROUTES.has(match.route)) {
      if (build === '2026-05-08' && OIDC_OR_CLI_SESSION_ROUTES.has(match.route)) {
        if (principal.kind === 'dashboard') {
          throw new ApiError(403, 'FORBIDDEN', 'OIDC or CLI session authentication required')
        }
      } else {
        throw new ApiError(403, 'FORBIDDEN', 'OIDC authentication required')
      }
    }
    try {
      rateLimiter.consume(principal.namespaceId)
    } catch (refusal) {
      // The runner a refused request came from, for tests that read the request log (the route
      // that would read the body never runs).
      record.runnerId ??= runnerIdIn(rawBody)
      throw refusal
    }

    const ns = principal.namespaceId
    const [runId = '', jobId = ''] = params
    const jsonBody = (): Record<string, unknown> => {
      const body = parseJsonObject(rawBody)
      if (typeof body.runnerId === 'string') record.runnerId = body.runnerId
      return body
    }
    switch (match.route) {
      case 'createRun':
        return store.createRun(principal, jsonBody())
      case 'getRun':
        return store.getRun(ns, runId)
      case 'claim':
        return store.claim(ns, runId, jobId, requireRunnerId(jsonBody()))
      case 'heartbeat':
        return store.heartbeat(ns, runId, jobId, requireRunnerId(jsonBody()))
      case 'update': {
        const body = jsonBody()
        // body checks come first: the Worker validates the body before asking the coordinator
        const runnerId = requireRunnerId(body)
        const status = body.status
        if (status !== 'success' && status !== 'failed') {
          throw new ApiError(400, 'INVALID_REQUEST', 'Invalid status')
        }
        return store.update(ns, runId, jobId, runnerId, status, body.error)
      }
      case 'runnable':
        return store.runnable(ns, runId)
      case 'listJobs':
        return store.listJobs(ns, runId)
      case 'jobStatus':
        return store.jobStatus(ns, runId, jobId)
      case 'uploadLog':
        return store.uploadLog(ns, runId, jobId, rawBody.toString('utf8'))
      case 'readLog':
        return store.readLog(ns, runId, jobId)
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
      at: clock()
    }
    requests.push(record)

    const fault = faults.take(match.route)
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
      send(res, record, errorReply(rateLimiter.error()))
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
    build,
    tokenEnv(identity = {}) {
      const merged: Identity = { ...defaultIdentity, ...identity }
      const query = new URLSearchParams(IDENTITY_KEYS.map(k => [k, merged[k]] as [string, string]))
      // @actions/core appends `&audience=...`, so the URL must already carry a query.
      return {
        ACTIONS_ID_TOKEN_REQUEST_URL: `${baseUrl}/_oidc/token?${query.toString()}`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: issuer.requestToken
      }
    },
    mintToken: opts => issuer.mint(opts),
    get tokensMinted() {
      return issuer.tokensMinted
    },
    requests,
    inject(route, fault) {
      faults.inject(route, fault)
    },
    clearFaults() {
      faults.clear()
    },
    setOptions(patch) {
      if (patch.heartbeatTimeoutMs !== undefined) heartbeatTimeoutMs = patch.heartbeatTimeoutMs
      if (patch.tokenLifetimeSeconds !== undefined)
        issuer.tokenLifetimeSeconds = patch.tokenLifetimeSeconds
      if (patch.latencyMs !== undefined) latencyMs = patch.latencyMs
      if (patch.initLagMs !== undefined) initLagMs = patch.initLagMs
      if (patch.logVisibilityMs !== undefined) logVisibilityMs = patch.logVisibilityMs
      if (patch.rateLimit !== undefined) rateLimiter.setLimit(patch.rateLimit)
    },
    jobsOf(runId, namespace) {
      return store.jobsOf(runId, namespace, defaultIdentity.repository_id)
    },
    storedLog(runId, jobId, namespace) {
      return store.storedLog(runId, jobId, namespace, defaultIdentity.repository_id)
    },
    async whenRateLimitRefilled() {
      const wait = rateLimiter.msUntilFull()
      if (wait > 0) await sleep(wait)
    },
    async whenVisible(runId, namespace) {
      const wait = store.msUntilVisible(runId, namespace, defaultIdentity.repository_id)
      if (wait > 0) await sleep(wait)
    },
    deleteRun(runId, namespace) {
      return store.deleteRun(runId, namespace, defaultIdentity.repository_id)
    },
    dropLiveState(runId, namespace) {
      return store.dropLiveState(runId, namespace, defaultIdentity.repository_id)
    },
    runPhase(runId, namespace) {
      return store.runPhase(runId, namespace, defaultIdentity.repository_id)
    },
    tick() {
      store.tick()
    },
    close() {
      if (timerTicker) clearInterval(timerTicker)
      for (const timer of pendingTimers) clearTimeout(timer)
      pendingTimers.clear()
      return new Promise<void>(resolve => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    }
  }
}
