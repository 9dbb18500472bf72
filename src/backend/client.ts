import { badResponse, preview, BackendError } from './errors.js'
import {
  BackendTransport,
  type AttemptTrace,
  type CallOptions,
  type ClientStats,
  type RawResponse,
  type RequestSpec,
  type TransportOptions
} from './transport.js'
import type {
  ClaimResult,
  CreateRunRequest,
  CreateRunResult,
  JobRecord,
  RunRecord
} from './types.js'

/** The orun-backend endpoints; how requests travel (retries, timeouts, 429s) is transport.ts. */
export { BackendError, isCancelledCall, formatDuration } from './errors.js'
export {
  ACTION_VERSION,
  DEFAULT_RETRY_BUDGET_MS,
  type CallOptions,
  type ClientStats
} from './transport.js'

export type BackendClientOptions = TransportOptions

const seg = encodeURIComponent

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
  private readonly transport: BackendTransport
  constructor(options: BackendClientOptions) {
    this.transport = new BackendTransport(options)
  }

  get stats(): ClientStats {
    return this.transport.stats
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
    runnerId: string,
    call?: CallOptions
  ): Promise<{ ok: boolean; abort?: boolean }> {
    const endpoint = 'POST /v1/runs/{runId}/jobs/{jobId}/heartbeat'
    const path = `/v1/runs/${seg(runId)}/jobs/${seg(jobId)}/heartbeat`
    const response = await this.request(
      this.json('POST', endpoint, path, { runnerId }),
      undefined,
      call
    )
    return parseJson(endpoint, response, has('ok', 'boolean'))
  }

  async update(
    runId: string,
    jobId: string,
    runnerId: string,
    status: 'success' | 'failed',
    error?: string,
    call?: CallOptions
  ): Promise<{ ok: true; alreadyRecorded?: boolean }> {
    const endpoint = 'POST /v1/runs/{runId}/jobs/{jobId}/update'
    const path = `/v1/runs/${seg(runId)}/jobs/${seg(jobId)}/update`
    const body = error === undefined ? { runnerId, status } : { runnerId, status, error }
    const trace: AttemptTrace = { ambiguous: false }
    try {
      const response = await this.request(this.json('POST', endpoint, path, body), trace, call)
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
  async uploadLog(
    runId: string,
    jobId: string,
    text: string,
    call?: CallOptions
  ): Promise<{ logRef: string }> {
    const endpoint = 'POST /v1/runs/{runId}/logs/{jobId}'
    const response = await this.request(
      {
        method: 'POST',
        endpoint,
        path: `/v1/runs/${seg(runId)}/logs/${seg(jobId)}`,
        body: text,
        contentType: 'text/plain; charset=utf-8',
        accept: 'application/json',
        logs: true
      },
      undefined,
      call
    )
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

  private request(
    spec: RequestSpec,
    trace?: AttemptTrace,
    call?: CallOptions
  ): Promise<RawResponse> {
    return this.transport.request(spec, trace, call)
  }
}
