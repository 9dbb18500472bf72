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
      `The backend answered 503 HTTP_503 "refused" while joining run r1, through every retry: the backend (or a proxy in front of it) is failing. Check the service's health at 'backend-url', then re-run the job.`
    ]
  ])('%i %s says what to fix', (status, code, message) => {
    const explained = explainBackendError(answer(status, code), 'joining run r1')
    expect(explained).toBeInstanceOf(UserError)
    expect((explained as UserError).message).toBe(message)
  })

  it('an unreachable backend names the URL input and the proxy variables', () => {
    const explained = explainBackendError(
      answer(0, 'NETWORK', 'connect ECONNREFUSED 127.0.0.1:9'),
      'reading run r1'
    )
    expect((explained as UserError).message).toBe(
      "Could not reach the backend while reading run r1: connect ECONNREFUSED 127.0.0.1:9. Check 'backend-url' (or ORUN_BACKEND_URL) and, on self-hosted runners, HTTPS_PROXY/NO_PROXY."
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
    const notFound = answer(404, 'NOT_FOUND')
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
