import { HttpClient, type HttpClientResponse } from '@actions/http-client'
import type { OutgoingHttpHeaders } from 'node:http'
import { withRetry, type Random, type Sleep } from '../common/retry.js'
import { errorMessage } from '../common/errors.js'
import type { TokenSource } from './auth.js'
import type {
  ClaimResult,
  CreateRunRequest,
  CreateRunResult,
  JobRecord,
  RunRecord
} from './types.js'

/** Sent in the User-Agent; keep in step with package.json. */
export const ACTION_VERSION = '1.0.0'

const BACKOFF_BASE_MS = 500
const BACKOFF_CAP_MS = 10_000
/** What the live service answers with Retry-After; used when the header is missing. */
const DEFAULT_RETRY_AFTER_MS = 1000
const RATE_LIMIT_JITTER_CAP_MS = 2500
const BODY_PREVIEW_CHARS = 100

const CODE_BY_STATUS: Record<number, string> = {
  400: 'INVALID_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  429: 'RATE_LIMITED',
  500: 'INTERNAL_ERROR'
}

/** A failed backend call; message is the server's own message (or the network failure). */
export class BackendError extends Error {
  /** 0 for network errors and timeouts. */
  readonly status: number
  /** The envelope's code (NOT_FOUND, ...), or NETWORK, TIMEOUT, BAD_RESPONSE. */
  readonly code: string
  /** The route, ids left as placeholders: 'POST /v1/runs/{runId}/jobs/{jobId}/claim'. */
  readonly endpoint: string
  retryAfterMs?: number

  constructor(init: {
    status: number
    code: string
    endpoint: string
    message: string
    retryAfterMs?: number
  }) {
    super(init.message)
    this.name = 'BackendError'
    this.status = init.status
    this.code = init.code
    this.endpoint = init.endpoint
    this.retryAfterMs = init.retryAfterMs
  }

  /** One line for logs: where, what status, what message. */
  describe(): string {
    const answer = this.status ? `${this.status} ${this.code}` : this.code
    return `${this.endpoint} failed (${answer}): ${this.message}`
  }
}

export interface ClientStats {
  requests: number
  rateLimited: number
  retries: number
  tokenRefreshes: number
  byRoute: Record<string, number>
}

export interface BackendClientOptions {
  baseUrl: string
  tokens: TokenSource
  userAgent?: string
  /** default 30 s */
  timeoutMs?: number
  /** log upload and read; default 120 s */
  logTimeoutMs?: number
  /** attempts for 5xx/network/timeout; default 5 */
  maxAttempts?: number
  /** attempts answered 429; default 30 */
  maxRateLimitedAttempts?: number
  sleep?: Sleep
  random?: Random
  log?: (message: string) => void
}

interface RequestSpec {
  method: 'GET' | 'POST'
  endpoint: string
  path: string
  body?: string
  contentType?: string
  accept?: string
  /** Only the health probe goes without a token (it then costs no rate-limit budget either). */
  auth?: boolean
  logs?: boolean
}

interface RawResponse {
  status: number
  text: string
}

/** Set by request(): whether an earlier attempt may have reached the server and taken effect. */
interface AttemptTrace {
  ambiguous: boolean
}

const seg = encodeURIComponent

function isGenericInternalError(message: string): boolean {
  return /^(internal( server)? error|internal_error)?\.?$/i.test(message.trim())
}

/**
 * createRun's plan validation answers 500 with a specific message (Duplicate
 * jobId, dependency does not exist in plan): retrying cannot help.
 */
function isPermanentCreateRunFailure(error: BackendError): boolean {
  return (
    error.endpoint === 'POST /v1/runs' &&
    error.status === 500 &&
    error.code !== 'BAD_RESPONSE' &&
    !isGenericInternalError(error.message)
  )
}

function isTransient(error: BackendError): boolean {
  return error.status === 0 || error.status >= 500
}

function preview(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > BODY_PREVIEW_CHARS ? `${flat.slice(0, BODY_PREVIEW_CHARS)}...` : flat
}

function badResponse(endpoint: string, status: number, detail: string): BackendError {
  return new BackendError({ status, code: 'BAD_RESPONSE', endpoint, message: detail })
}

function parseRetryAfter(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (!value) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}

function errorFromResponse(
  endpoint: string,
  status: number,
  text: string,
  retryAfter: string | string[] | undefined
): BackendError {
  let envelope: unknown
  try {
    envelope = JSON.parse(text)
  } catch {
    envelope = undefined
  }
  if (!envelope || typeof envelope !== 'object') {
    const body = text.trim() ? `"${preview(text)}"` : 'an empty body'
    const error = badResponse(
      endpoint,
      status,
      `HTTP ${status} with ${body} instead of a JSON error`
    )
    if (status === 429) error.retryAfterMs = parseRetryAfter(retryAfter)
    return error
  }
  const { error: message, code } = envelope as { error?: unknown; code?: unknown }
  const fallbackCode = CODE_BY_STATUS[status] ?? `HTTP_${status}`
  return new BackendError({
    status,
    code: typeof code === 'string' && code ? code : fallbackCode,
    endpoint,
    message: typeof message === 'string' && message ? message : `HTTP ${status}`,
    retryAfterMs: status === 429 ? parseRetryAfter(retryAfter) : undefined
  })
}

function parseJson<T>(
  endpoint: string,
  response: RawResponse,
  valid: (value: unknown) => boolean
): T {
  let value: unknown
  try {
    value = JSON.parse(response.text)
  } catch {
    const body = response.text.trim() ? `"${preview(response.text)}"` : 'an empty body'
    throw badResponse(
      endpoint,
      response.status,
      `HTTP ${response.status} with ${body} instead of JSON`
    )
  }
  if (!value || typeof value !== 'object' || !valid(value)) {
    throw badResponse(
      endpoint,
      response.status,
      `HTTP ${response.status} with an unexpected JSON shape: "${preview(response.text)}"`
    )
  }
  return value as T
}

const has = (key: string, type: string) => (value: unknown) =>
  typeof (value as Record<string, unknown>)[key] === type
const hasArray = (key: string) => (value: unknown) =>
  Array.isArray((value as Record<string, unknown>)[key])

/**
 * The typed orun-backend client. Retries live here and only here: network
 * errors, timeouts and 5xx with full-jitter backoff; 429 after Retry-After; a
 * 401 once after re-minting the token. Every call sends exactly the requests it
 * needs, no preflights.
 */
export class BackendClient {
  readonly stats: ClientStats = {
    requests: 0,
    rateLimited: 0,
    retries: 0,
    tokenRefreshes: 0,
    byRoute: {}
  }
  private readonly baseUrl: string
  private readonly tokens: TokenSource
  private readonly http: HttpClient
  private readonly logHttp: HttpClient
  private readonly maxAttempts: number
  private readonly maxRateLimitedAttempts: number
  private readonly sleep?: Sleep
  private readonly random?: Random
  private readonly log: (message: string) => void

  constructor(options: BackendClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.tokens = options.tokens
    const userAgent = options.userAgent ?? `orun-action/${ACTION_VERSION}`
    // @actions/http-client routes through HTTPS_PROXY/HTTP_PROXY unless NO_PROXY matches.
    // Its own retries stay off: they would retry POSTs blindly and hide requests from stats.
    this.http = new HttpClient(userAgent, [], {
      socketTimeout: options.timeoutMs ?? 30_000,
      allowRetries: false
    })
    this.logHttp = new HttpClient(userAgent, [], {
      socketTimeout: options.logTimeoutMs ?? 120_000,
      allowRetries: false
    })
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5)
    this.maxRateLimitedAttempts = Math.max(1, options.maxRateLimitedAttempts ?? 30)
    this.sleep = options.sleep
    this.random = options.random
    this.log = options.log ?? (() => {})
  }

  async health(): Promise<{ status: string; service: string }> {
    const endpoint = 'GET /'
    const response = await this.request({ method: 'GET', endpoint, path: '/', auth: false })
    return parseJson(endpoint, response, has('status', 'string'))
  }

  /**
   * Idempotent for a given runId (a second create is a join, 200). A create
   * whose 201 was lost and was retried reports created: false.
   */
  async createRun(request: CreateRunRequest): Promise<CreateRunResult> {
    const endpoint = 'POST /v1/runs'
    const response = await this.request(this.json('POST', endpoint, '/v1/runs', request))
    const body = parseJson<Omit<CreateRunResult, 'created'>>(
      endpoint,
      response,
      has('runId', 'string')
    )
    return {
      runId: body.runId,
      status: body.status,
      createdAt: body.createdAt,
      created: response.status === 201
    }
  }

  async getRun(runId: string): Promise<RunRecord> {
    const endpoint = 'GET /v1/runs/{runId}'
    const response = await this.request(this.json('GET', endpoint, `/v1/runs/${seg(runId)}`))
    return parseJson<{ run: RunRecord }>(endpoint, response, has('run', 'object')).run
  }

  async claim(runId: string, jobId: string, runnerId: string): Promise<ClaimResult> {
    const endpoint = 'POST /v1/runs/{runId}/jobs/{jobId}/claim'
    const path = `/v1/runs/${seg(runId)}/jobs/${seg(jobId)}/claim`
    const trace: AttemptTrace = { ambiguous: false }
    const response = await this.request(this.json('POST', endpoint, path, { runnerId }), trace)
    const result = parseJson<ClaimResult>(endpoint, response, has('claimed', 'boolean'))
    // An attempt that failed in flight may have claimed the job for us; the retry
    // then sees it "running". A claim cannot be resumed, so ask who owns it.
    if (trace.ambiguous && !result.claimed && result.currentStatus === 'running') {
      const job = await this.jobStatus(runId, jobId)
      if (job.runnerId === runnerId) return { claimed: true, recovered: true }
    }
    return result
  }

  async heartbeat(
    runId: string,
    jobId: string,
    runnerId: string
  ): Promise<{ ok: boolean; abort?: boolean }> {
    const endpoint = 'POST /v1/runs/{runId}/jobs/{jobId}/heartbeat'
    const path = `/v1/runs/${seg(runId)}/jobs/${seg(jobId)}/heartbeat`
    const response = await this.request(this.json('POST', endpoint, path, { runnerId }))
    return parseJson(endpoint, response, has('ok', 'boolean'))
  }

  async update(
    runId: string,
    jobId: string,
    runnerId: string,
    status: 'success' | 'failed',
    error?: string
  ): Promise<{ ok: true; alreadyRecorded?: boolean }> {
    const endpoint = 'POST /v1/runs/{runId}/jobs/{jobId}/update'
    const path = `/v1/runs/${seg(runId)}/jobs/${seg(jobId)}/update`
    const body = error === undefined ? { runnerId, status } : { runnerId, status, error }
    const trace: AttemptTrace = { ambiguous: false }
    try {
      const response = await this.request(this.json('POST', endpoint, path, body), trace)
      return parseJson(endpoint, response, has('ok', 'boolean'))
    } catch (failure) {
      // An attempt that failed in flight may have recorded the result; the retry
      // then finds the job no longer running, in exactly the status we sent.
      if (
        trace.ambiguous &&
        failure instanceof BackendError &&
        failure.status === 400 &&
        failure.message === `Job is not running (current: ${status})`
      ) {
        return { ok: true, alreadyRecorded: true }
      }
      throw failure
    }
  }

  async runnable(runId: string): Promise<string[]> {
    const endpoint = 'GET /v1/runs/{runId}/runnable'
    const response = await this.request(
      this.json('GET', endpoint, `/v1/runs/${seg(runId)}/runnable`)
    )
    return parseJson<{ jobs: string[] }>(endpoint, response, hasArray('jobs')).jobs
  }

  async listJobs(runId: string): Promise<JobRecord[]> {
    const endpoint = 'GET /v1/runs/{runId}/jobs'
    const response = await this.request(this.json('GET', endpoint, `/v1/runs/${seg(runId)}/jobs`))
    return parseJson<{ jobs: JobRecord[] }>(endpoint, response, hasArray('jobs')).jobs
  }

  async jobStatus(runId: string, jobId: string): Promise<JobRecord> {
    const endpoint = 'GET /v1/runs/{runId}/jobs/{jobId}/status'
    const path = `/v1/runs/${seg(runId)}/jobs/${seg(jobId)}/status`
    const response = await this.request(this.json('GET', endpoint, path))
    return parseJson<JobRecord>(endpoint, response, has('status', 'string'))
  }

  /** Replaces the stored log (the last upload wins), so it is safe to retry. */
  async uploadLog(runId: string, jobId: string, text: string): Promise<{ logRef: string }> {
    const endpoint = 'POST /v1/runs/{runId}/logs/{jobId}'
    const response = await this.request({
      method: 'POST',
      endpoint,
      path: `/v1/runs/${seg(runId)}/logs/${seg(jobId)}`,
      body: text,
      contentType: 'text/plain; charset=utf-8',
      accept: 'application/json',
      logs: true
    })
    const body = parseJson<{ logRef: string }>(endpoint, response, has('logRef', 'string'))
    return { logRef: body.logRef }
  }

  async readLog(runId: string, jobId: string): Promise<string> {
    const response = await this.request({
      method: 'GET',
      endpoint: 'GET /v1/runs/{runId}/logs/{jobId}',
      path: `/v1/runs/${seg(runId)}/logs/${seg(jobId)}`,
      accept: 'text/plain, application/json',
      logs: true
    })
    return response.text
  }

  private json(
    method: 'GET' | 'POST',
    endpoint: string,
    path: string,
    body?: unknown
  ): RequestSpec {
    return body === undefined
      ? { method, endpoint, path, accept: 'application/json' }
      : {
          method,
          endpoint,
          path,
          body: JSON.stringify(body),
          contentType: 'application/json',
          accept: 'application/json'
        }
  }

  /** Sends one logical call, with every retry it may take; resolves only with a 2xx. */
  private async request(
    spec: RequestSpec,
    trace: AttemptTrace = { ambiguous: false }
  ): Promise<RawResponse> {
    let transientFailures = 0
    let rateLimitedAnswers = 0
    let reminted = false
    return withRetry(
      async () => {
        try {
          return await this.send(spec)
        } catch (error) {
          // One re-mint per call: a token can expire between mint and use, or clocks can skew.
          // A static token cannot be re-minted, so repeating the request would be wasted.
          const refused = error instanceof BackendError && error.status === 401
          if (!refused || reminted || this.tokens.kind !== 'oidc' || spec.auth === false)
            throw error
          reminted = true
          this.tokens.invalidate()
          this.stats.tokenRefreshes++
          this.log(`${error.describe()}; minting a new token and trying once more.`)
          return await this.send(spec)
        }
      },
      {
        // Each kind is bounded by its own limit in decide(); this only caps the sum.
        attempts: this.maxAttempts + this.maxRateLimitedAttempts,
        baseMs: BACKOFF_BASE_MS,
        capMs: BACKOFF_CAP_MS,
        sleep: this.sleep,
        random: this.random,
        decide: error => {
          if (!(error instanceof BackendError)) return { retry: false }
          if (error.status === 429) {
            rateLimitedAnswers++
            return rateLimitedAnswers < this.maxRateLimitedAttempts
              ? {
                  retry: true,
                  afterMs: error.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS,
                  // Every runner of the repository shares the bucket: each 429 in a row
                  // spreads the retries wider, so a crowd does not collide again next second.
                  jitterMs: Math.min(RATE_LIMIT_JITTER_CAP_MS, 1000 * 2 ** (rateLimitedAnswers - 1))
                }
              : { retry: false }
          }
          if (!isTransient(error) || isPermanentCreateRunFailure(error)) return { retry: false }
          // The request may have reached the server before it failed (lost response, 5xx after the write).
          trace.ambiguous = true
          transientFailures++
          return { retry: transientFailures < this.maxAttempts }
        },
        onRetry: (error, _attempt, delayMs) => {
          this.stats.retries++
          const what = error instanceof BackendError ? error.describe() : errorMessage(error)
          this.log(`${what}; retrying in ${delayMs} ms.`)
        }
      }
    )
  }

  /** One HTTP request; throws BackendError for anything but a 2xx. */
  private async send(spec: RequestSpec): Promise<RawResponse> {
    const headers: OutgoingHttpHeaders = {}
    if (spec.accept) headers['Accept'] = spec.accept
    if (spec.contentType) headers['Content-Type'] = spec.contentType
    if (spec.auth !== false) headers['Authorization'] = `Bearer ${await this.tokens.token()}`
    const http = spec.logs ? this.logHttp : this.http
    const url = `${this.baseUrl}${spec.path}`

    this.stats.requests++
    this.stats.byRoute[spec.endpoint] = (this.stats.byRoute[spec.endpoint] ?? 0) + 1
    let response: HttpClientResponse
    let text: string
    try {
      response = await http.request(spec.method, url, spec.body ?? null, headers)
      text = await response.readBody()
    } catch (error) {
      const message = errorMessage(error)
      const timedOut = message.startsWith('Request timeout')
      throw new BackendError({
        status: 0,
        code: timedOut ? 'TIMEOUT' : 'NETWORK',
        endpoint: spec.endpoint,
        // Never echo the request (it carries the token); the error names only the path.
        message: timedOut ? 'no answer before the timeout' : message
      })
    }
    const status = response.message.statusCode ?? 0
    if (status >= 200 && status < 300) return { status, text }
    if (status === 429) this.stats.rateLimited++
    throw errorFromResponse(spec.endpoint, status, text, response.message.headers['retry-after'])
  }
}
