import { HttpClient, type HttpClientResponse } from '@actions/http-client'
import type { OutgoingHttpHeaders } from 'node:http'
import { errorMessage } from '../common/errors.js'
import { scaledBudget, withRetry, type Random, type Sleep } from '../common/retry.js'
import type { TokenSource } from './auth.js'
import {
  BackendError,
  errorFromResponse,
  isPermanentCreateRunFailure,
  isTransient
} from './errors.js'

/**
 * How requests reach orun-backend: timeouts, retries (time-based), 429s, one
 * re-mint on 401, cancellation, and the request counters. The endpoints are in
 * client.ts.
 */

/** Sent in the User-Agent; keep in step with package.json. */
export const ACTION_VERSION = '1.0.0'

const BACKOFF_BASE_MS = 500
/** Pauses between attempts stay under this, so a backend that comes back is seen soon. */
const BACKOFF_CAP_MS = 15_000
/** What the live service answers with Retry-After; used when the header is missing. */
const DEFAULT_RETRY_AFTER_MS = 1000
const RATE_LIMIT_JITTER_CAP_MS = 2500

/**
 * How long one call keeps retrying 5xx, network failures, timeouts and 429s
 * by default: long enough to ride out an outage of a few minutes (orun's own
 * client gives its final update 90 s), short enough that a backend that is
 * really gone fails the job in minutes, saying so.
 */
export const DEFAULT_RETRY_BUDGET_MS = 5 * 60_000
export const DEFAULT_TIMEOUT_MS = 30_000
export const DEFAULT_LOG_TIMEOUT_MS = 30_000

export interface ClientStats {
  requests: number
  rateLimited: number
  /** The X-RateLimit-Limit of the latest 429 (the bucket's burst), when it said one. */
  rateLimitBurst?: number
  retries: number
  tokenRefreshes: number
  byRoute: Record<string, number>
}

/** Per-call bounds, on top of the client's defaults. */
export interface CallOptions {
  /** How long this call may keep retrying; 0 sends one request (a 401 re-mint aside). */
  budgetMs?: number
  /** Ends the call at once, in flight or between attempts, with a CANCELLED BackendError. */
  signal?: AbortSignal
}

export interface TransportOptions {
  baseUrl: string
  tokens: TokenSource
  userAgent?: string
  /** One request, from sending to the end of the answer; default 30 s. */
  timeoutMs?: number
  /** One log upload or read; default 30 s. */
  logTimeoutMs?: number
  /** Default retry budget of a call; default 5 minutes. */
  retryBudgetMs?: number
  /** Optional cap on attempts answered 5xx/network/timeout (tests); default none. */
  maxAttempts?: number
  /** Optional cap on attempts answered 429 (tests); default none. */
  maxRateLimitedAttempts?: number
  /** Default signal of every call (a call's own signal replaces it). */
  signal?: AbortSignal
  sleep?: Sleep
  random?: Random
  now?: () => number
  log?: (message: string) => void
}

export interface RequestSpec {
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

export interface RawResponse {
  status: number
  text: string
}

/** Set by request(): whether an earlier attempt may have reached the server and taken effect. */
export interface AttemptTrace {
  ambiguous: boolean
}

/** Why an attempt was abandoned before its answer came. */
class Abandoned extends Error {
  constructor(readonly reason: 'timeout' | 'cancelled') {
    super(reason)
  }
}

export class BackendTransport {
  readonly stats: ClientStats = {
    requests: 0,
    rateLimited: 0,
    retries: 0,
    tokenRefreshes: 0,
    byRoute: {}
  }
  private readonly baseUrl: string
  private readonly tokens: TokenSource
  private readonly userAgent: string
  private readonly timeoutMs: number
  private readonly logTimeoutMs: number
  private readonly retryBudgetMs: number
  private readonly maxAttempts: number
  private readonly maxRateLimitedAttempts: number
  private readonly signal?: AbortSignal
  private readonly sleep?: Sleep
  private readonly random?: Random
  private readonly now: () => number
  private readonly log: (message: string) => void
  private http: HttpClient
  private logHttp: HttpClient

  constructor(options: TransportOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.tokens = options.tokens
    this.userAgent = options.userAgent ?? `orun-action/${ACTION_VERSION}`
    this.timeoutMs = options.timeoutMs ?? scaledBudget(DEFAULT_TIMEOUT_MS, 5_000)
    this.logTimeoutMs = options.logTimeoutMs ?? scaledBudget(DEFAULT_LOG_TIMEOUT_MS, 5_000)
    this.retryBudgetMs = options.retryBudgetMs ?? scaledBudget(DEFAULT_RETRY_BUDGET_MS)
    this.maxAttempts = Math.max(1, options.maxAttempts ?? Infinity)
    this.maxRateLimitedAttempts = Math.max(1, options.maxRateLimitedAttempts ?? Infinity)
    this.signal = options.signal
    this.sleep = options.sleep
    this.random = options.random
    this.now = options.now ?? Date.now
    this.log = options.log ?? (() => {})
    this.http = this.newHttp(this.timeoutMs)
    this.logHttp = this.newHttp(this.logTimeoutMs)
  }

  /**
   * @actions/http-client routes through HTTPS_PROXY/HTTP_PROXY unless NO_PROXY matches.
   * Its own retries stay off: they would retry POSTs blindly and hide requests from stats.
   * keepAlive gives the client its own agent, so an abandoned request can be torn down
   * (dispose) instead of holding the process open until its socket times out.
   */
  private newHttp(socketTimeout: number): HttpClient {
    return new HttpClient(this.userAgent, [], {
      socketTimeout,
      allowRetries: false,
      keepAlive: true
    })
  }

  /** Sends one logical call, with every retry it may take; resolves only with a 2xx. */
  async request(
    spec: RequestSpec,
    trace: AttemptTrace = { ambiguous: false },
    call: CallOptions = {}
  ): Promise<RawResponse> {
    const signal = call.signal ?? this.signal
    let transientFailures = 0
    let rateLimitedAnswers = 0
    let reminted = false
    const cancelled = () =>
      new BackendError({
        status: 0,
        code: 'CANCELLED',
        endpoint: spec.endpoint,
        message: 'the call was cancelled (the runner is stopping)'
      })
    return withRetry(
      async () => {
        try {
          return await this.send(spec, signal)
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
          return await this.send(spec, signal)
        }
      },
      {
        budgetMs: call.budgetMs ?? this.retryBudgetMs,
        baseMs: BACKOFF_BASE_MS,
        capMs: BACKOFF_CAP_MS,
        sleep: this.sleep,
        random: this.random,
        now: this.now,
        signal,
        onAbort: cancelled,
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
        },
        onGiveUp: (error, spent) => {
          if (error instanceof BackendError) {
            error.attempts = spent.attempts
            error.triedForMs = spent.elapsedMs
          }
        }
      }
    )
  }

  /** One HTTP request; throws BackendError for anything but a 2xx. */
  private async send(spec: RequestSpec, signal?: AbortSignal): Promise<RawResponse> {
    const cancelledError = () =>
      new BackendError({
        status: 0,
        code: 'CANCELLED',
        endpoint: spec.endpoint,
        message: 'the call was cancelled (the runner is stopping)'
      })
    if (signal?.aborted) throw cancelledError()
    const headers: OutgoingHttpHeaders = {}
    if (spec.accept) headers['Accept'] = spec.accept
    if (spec.contentType) headers['Content-Type'] = spec.contentType
    if (spec.auth !== false) headers['Authorization'] = `Bearer ${await this.tokens.token()}`
    const http = spec.logs ? this.logHttp : this.http
    const timeoutMs = spec.logs ? this.logTimeoutMs : this.timeoutMs
    const url = `${this.baseUrl}${spec.path}`

    this.stats.requests++
    this.stats.byRoute[spec.endpoint] = (this.stats.byRoute[spec.endpoint] ?? 0) + 1
    let response: HttpClientResponse
    let text: string
    // The socket timeout only notices silence; a hard deadline also ends an answer that trickles.
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    const abandon = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Abandoned('timeout')), timeoutMs)
      onAbort = () => reject(new Abandoned('cancelled'))
      signal?.addEventListener('abort', onAbort, { once: true })
    })
    try {
      response = await Promise.race([
        http.request(spec.method, url, spec.body ?? null, headers),
        abandon
      ])
      text = await Promise.race([response.readBody(), abandon])
    } catch (error) {
      if (error instanceof Abandoned) {
        // Tear the request down now: a hung connection must not keep the process alive.
        this.replaceHttp(spec.logs === true)
        if (error.reason === 'cancelled') throw cancelledError()
      }
      const message = errorMessage(error)
      const timedOut = error instanceof Abandoned || message.startsWith('Request timeout')
      throw new BackendError({
        status: 0,
        code: timedOut ? 'TIMEOUT' : 'NETWORK',
        endpoint: spec.endpoint,
        // Never echo the request (it carries the token); the error names only the path.
        message: timedOut ? `no answer within ${Math.round(timeoutMs / 1000)} s` : message
      })
    } finally {
      clearTimeout(timer)
      if (onAbort) signal?.removeEventListener('abort', onAbort)
      abandon.catch(() => {})
    }
    const status = response.message.statusCode ?? 0
    if (status >= 200 && status < 300) return { status, text }
    if (status === 429) {
      this.stats.rateLimited++
      // The bucket's size, as the 429 states it: what a runner learns the limit from (pace.ts).
      const burst = Number(response.message.headers['x-ratelimit-limit'])
      if (burst > 0) this.stats.rateLimitBurst = burst
    }
    throw errorFromResponse(spec.endpoint, status, text, response.message.headers['retry-after'])
  }

  private replaceHttp(logs: boolean): void {
    const old = logs ? this.logHttp : this.http
    if (logs) this.logHttp = this.newHttp(this.logTimeoutMs)
    else this.http = this.newHttp(this.timeoutMs)
    old.dispose()
  }
}
