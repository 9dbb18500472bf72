/** What a failed backend call looks like to the rest of the action, and how answers are read. */

const BODY_PREVIEW_CHARS = 100

const CODE_BY_STATUS: Record<number, string> = {
  400: 'INVALID_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RATE_LIMITED',
  431: 'HEADERS_TOO_LARGE',
  500: 'INTERNAL_ERROR'
}

/** A failed backend call; message is the server's own message (or the network failure). */
export class BackendError extends Error {
  /** 0 for network errors, timeouts and cancelled calls. */
  readonly status: number
  /** The envelope's code (NOT_FOUND, ...), or NETWORK, TIMEOUT, BAD_RESPONSE, CANCELLED. */
  readonly code: string
  /** The route, ids left as placeholders: 'POST /v1/runs/{runId}/jobs/{jobId}/claim'. */
  readonly endpoint: string
  retryAfterMs?: number
  /** Set when the call gave up after retrying: how many requests it sent, over how long. */
  attempts?: number
  triedForMs?: number

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

  /** ", after 41 attempts over 5m 2s" when the call retried, else "". */
  describeRetries(): string {
    if (!this.attempts || this.attempts < 2 || this.triedForMs === undefined) return ''
    return `, after ${this.attempts} attempts over ${formatDuration(this.triedForMs)}`
  }
}

/** A call ended by the caller (a cancelled run), not by the backend. */
export function isCancelledCall(error: unknown): boolean {
  return error instanceof BackendError && error.code === 'CANCELLED'
}

/** 1m 5s, 42s, 850ms. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  const seconds = Math.round(ms / 1000)
  const minutes = Math.floor(seconds / 60)
  return minutes ? `${minutes}m ${seconds % 60}s` : `${seconds}s`
}

function isGenericInternalError(message: string): boolean {
  return /^(internal( server)? error|internal_error)?\.?$/i.test(message.trim())
}

/**
 * createRun's plan validation answers 500 with a specific message (Duplicate
 * jobId, dependency does not exist in plan): retrying cannot help.
 */
export function isPermanentCreateRunFailure(error: BackendError): boolean {
  return (
    error.endpoint === 'POST /v1/runs' &&
    error.status === 500 &&
    error.code !== 'BAD_RESPONSE' &&
    !isGenericInternalError(error.message)
  )
}

/**
 * Worth retrying: network failures, timeouts, 5xx (HTML error pages of a proxy
 * included). 413/431 (an id longer than the service accepts) never are.
 */
export function isTransient(error: BackendError): boolean {
  return (error.status === 0 && error.code !== 'CANCELLED') || error.status >= 500
}

export function preview(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > BODY_PREVIEW_CHARS ? `${flat.slice(0, BODY_PREVIEW_CHARS)}...` : flat
}

export function badResponse(endpoint: string, status: number, detail: string): BackendError {
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

/** The BackendError for a non-2xx answer: the error envelope when there is one. */
export function errorFromResponse(
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
