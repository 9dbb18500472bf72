/**
 * What the user reads when the backend refuses: explainBackendError turns each
 * answer a user can fix into a UserError naming the fix, and leaves the rest alone;
 * resolveBackendUrl accepts https (http only on loopback) and says what to set.
 */
import { afterEach, describe, expect, it } from '@jest/globals'
import { BackendError } from '../src/backend/client.js'
import { explainBackendError } from '../src/backend/session.js'
import { resolveBackendUrl } from '../src/backend/url.js'
import { UserError } from '../src/common/errors.js'

const answer = (status: number, code: string, message = 'refused') =>
  new BackendError({ status, code, endpoint: 'POST /v1/runs', message })

describe('explainBackendError', () => {
  it.each([
    [
      401,
      'UNAUTHORIZED',
      `The backend answered 401 UNAUTHORIZED "refused" while joining run r1. The token was refused: check that the backend's audience matches the 'audience' input (default orun) and that the job has 'permissions: id-token: write'.`
    ],
    [
      403,
      'FORBIDDEN',
      `The backend answered 403 FORBIDDEN "refused" while joining run r1. This repository may not use that run, or the backend accepts only GitHub OIDC tokens for this call: remove the static 'token'/ORUN_TOKEN and grant 'permissions: id-token: write'.`
    ],
    [
      409,
      'CONFLICT',
      `The backend answered 409 CONFLICT "refused" while joining run r1. The run id is already used by a different plan: every job of one run must use the same plan. Pass the plan job's 'run-id' and 'plan-id' outputs unchanged, or choose a new 'run-id'.`
    ],
    [
      429,
      'RATE_LIMITED',
      `The backend answered 429 RATE_LIMITED "refused" while joining run r1, and kept doing so through every retry. Every runner of this repository shares one rate limit (burst 20, 5 requests/s): lower the matrix's 'max-parallel', or run fewer orun runs at once.`
    ],
    [
      503,
      'HTTP_503',
      `The backend answered 503 HTTP_503 "refused" while joining run r1, through every retry: the backend (or a proxy in front of it) is failing. Check the service's health at 'backend-url' (GET / answers {"status":"ok"}), then re-run the job.`
    ]
  ])('%i %s says what to fix', (status, code, message) => {
    const explained = explainBackendError(answer(status, code), 'joining run r1')
    expect(explained).toBeInstanceOf(UserError)
    expect((explained as UserError).message).toBe(message)
  })

  it.each(['Token not yet valid', 'Token expired'])(
    '401 "%s" names the clock, not the audience or permissions',
    message => {
      const explained = explainBackendError(answer(401, 'UNAUTHORIZED', message), 'joining run r1')
      expect(explained).toBeInstanceOf(UserError)
      const text = (explained as UserError).message
      expect(text).toContain(`401 UNAUTHORIZED "${message}"`)
      expect(text).toMatch(/clock/)
      expect(text).toMatch(/time sync/)
      expect(text).not.toMatch(/audience|id-token/)
    }
  )

  it('an unreachable backend names the URL input and the proxy variables', () => {
    const explained = explainBackendError(
      answer(0, 'NETWORK', 'connect ECONNREFUSED 127.0.0.1:9'),
      'reading run r1'
    )
    expect((explained as UserError).message).toBe(
      "Could not reach the backend while reading run r1: connect ECONNREFUSED 127.0.0.1:9. Check that the service at 'backend-url' (or ORUN_BACKEND_URL) is up and that the URL is right; on self-hosted runners also check HTTPS_PROXY/NO_PROXY. Then re-run the job."
    )
  })

  it('says for how long a call was retried before it gave up', () => {
    const error = answer(0, 'NETWORK', 'connect ECONNREFUSED 127.0.0.1:9')
    error.attempts = 41
    error.triedForMs = 300_400
    expect((explainBackendError(error, 'reading run r1') as UserError).message).toMatch(
      /^Could not reach the backend while reading run r1, after 41 attempts over 5m 0s: connect/
    )
  })

  it('a 404 on POST /v1/runs means the URL is not orun-backend', () => {
    const explained = explainBackendError(answer(404, 'NOT_FOUND', 'Not found'), 'joining run r1')
    expect((explained as UserError).message).toBe(
      "The backend URL does not look like orun-backend: POST /v1/runs answered 404 (Not found) while joining run r1. Check 'backend-url' (or ORUN_BACKEND_URL): it must be the service's base URL, without a path prefix such as /api or /v1 unless the service is mounted there."
    )
  })

  it('a 431 or 413 names the id that is too long', () => {
    const tooLong = new BackendError({
      status: 431,
      code: 'BAD_RESPONSE',
      endpoint: 'POST /v1/runs/{runId}/jobs/{jobId}/claim',
      message: 'HTTP 431 with an empty body instead of a JSON error'
    })
    const jobId = `${'x'.repeat(5000)}@dev.smoke`
    const explained = explainBackendError(tooLong, 'claiming', { runId: 'gha-1-1-abc', jobId })
    expect((explained as UserError).message).toContain(
      `the job id '${'x'.repeat(40)}…' (5010 characters) is longer than the backend or its proxy accepts`
    )
  })

  it('a malformed answer or a timeout is the backend failing', () => {
    for (const code of ['BAD_RESPONSE', 'TIMEOUT']) {
      const explained = explainBackendError(answer(200, code), 'claiming')
      expect(explained).toBeInstanceOf(UserError)
      expect((explained as UserError).message).toContain(
        'the backend (or a proxy in front of it) is failing'
      )
    }
  })

  it('leaves answers no input can fix, and other errors, as they are', () => {
    const notFound = new BackendError({
      status: 404,
      code: 'NOT_FOUND',
      endpoint: 'GET /v1/runs/{runId}',
      message: 'Run not found'
    })
    expect(explainBackendError(notFound, 'claiming')).toBe(notFound)
    const bug = new TypeError('x is undefined')
    expect(explainBackendError(bug, 'claiming')).toBe(bug)
  })
})

describe('resolveBackendUrl', () => {
  const saved = process.env.ORUN_BACKEND_URL
  afterEach(() => {
    if (saved === undefined) delete process.env.ORUN_BACKEND_URL
    else process.env.ORUN_BACKEND_URL = saved
  })

  it('takes the input, else ORUN_BACKEND_URL, without trailing slashes', () => {
    process.env.ORUN_BACKEND_URL = 'https://from-env.example.dev/'
    expect(resolveBackendUrl('https://orun-api.example.dev//', true)).toBe(
      'https://orun-api.example.dev'
    )
    expect(resolveBackendUrl('', true)).toBe('https://from-env.example.dev')
    expect(resolveBackendUrl(undefined, false)).toBe('https://from-env.example.dev')
  })

  it('is optional where the action can do without it', () => {
    delete process.env.ORUN_BACKEND_URL
    expect(resolveBackendUrl('', false)).toBeUndefined()
    expect(() => resolveBackendUrl('  ', true)).toThrow(
      "No backend URL: set the 'backend-url' input, or ORUN_BACKEND_URL"
    )
  })

  it('accepts plain http only on loopback', () => {
    for (const url of ['http://localhost:8787', 'http://127.0.0.1:1', 'http://[::1]:8080']) {
      expect(resolveBackendUrl(url, true)).toBe(url)
    }
    expect(() => resolveBackendUrl('http://orun-api.example.dev', true)).toThrow(
      "Input 'backend-url' must be an https:// URL (plain http only for localhost), got 'http://orun-api.example.dev'."
    )
  })

  it('refuses what is not a URL', () => {
    expect(() => resolveBackendUrl('orun-api.example.dev', true)).toThrow(
      "Input 'backend-url' is not a URL: 'orun-api.example.dev'. Use e.g. https://orun-api.example.workers.dev."
    )
  })
})
