/**
 * Conformance suite for the local coordination server: every row of
 * ../shared/spec/backend-protocol.md as a table of requests and the exact
 * responses the live orun-backend gives, over real HTTP on loopback.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals'
import * as core from '@actions/core'
import { SignJWT, createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import {
  BACKEND_BUILDS,
  BUILD_RATE_LIMITS,
  HEARTBEAT_TIMEOUT_ERROR,
  defaultIdentity,
  startCoordinationServer,
  type BackendBuild,
  type CoordinationServer,
  type Identity,
  IMMEDIATE_CONSISTENCY
} from '../testing/coordination-server.js'
import { silenceWorkflowCommands } from '../testing/quiet.js'

// getIDToken announces each minted token with ::add-mask:: and ::debug:: lines.
beforeAll(() => silenceWorkflowCommands())

const iso = expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
const enc = encodeURIComponent
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

const otherRepo: Identity = {
  repository: 'evil/fork',
  repository_id: '3003',
  repository_owner: 'evil',
  repository_owner_id: '4004',
  actor: 'mallory'
}

interface Expected {
  status: number
  /** exact JSON body (asymmetric matchers allowed) */
  body?: unknown
  /** exact text body */
  text?: string
  /** header values; null means the header must be absent */
  headers?: Record<string, string | null>
}

interface Step {
  name: string
  method?: string
  path: string
  /** bearer token; null sends no Authorization header; default: the table's token */
  token?: string | null
  /** a raw Authorization header value, overrides token */
  authorization?: string
  json?: unknown
  raw?: string
  expect: Expected
}

interface Answer {
  status: number
  headers: Headers
  text: string
  body: unknown
}

async function send(
  server: CoordinationServer,
  step: Step,
  defaultToken?: string
): Promise<Answer> {
  const headers: Record<string, string> = {}
  const token = step.token === undefined ? defaultToken : step.token
  if (step.authorization !== undefined) headers.Authorization = step.authorization
  else if (token) headers.Authorization = `Bearer ${token}`
  let body: string | undefined
  if (step.json !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(step.json)
  } else if (step.raw !== undefined) {
    headers['Content-Type'] = 'text/plain'
    body = step.raw
  }
  const method = step.method ?? (body === undefined ? 'GET' : 'POST')
  const res = await fetch(`${server.url}${step.path}`, { method, headers, body })
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = undefined
  }
  return { status: res.status, headers: res.headers, text, body: parsed }
}

function check(step: Step, answer: Answer): void {
  const actual: Record<string, unknown> = { step: step.name, status: answer.status }
  const wanted: Record<string, unknown> = { step: step.name, status: step.expect.status }
  if (step.expect.body !== undefined) {
    actual.body = answer.body
    wanted.body = step.expect.body
  }
  if (step.expect.text !== undefined) {
    actual.text = answer.text
    wanted.text = step.expect.text
  }
  if (step.expect.headers) {
    actual.headers = Object.fromEntries(
      Object.keys(step.expect.headers).map(h => [h, answer.headers.get(h)])
    )
    wanted.headers = step.expect.headers
  }
  // the step name rides along so a failing row names itself in the diff
  expect(actual).toEqual(wanted)
}

async function runTable(server: CoordinationServer, steps: Step[], token?: string): Promise<void> {
  for (const step of steps) check(step, await send(server, step, token))
}

function plan(checksum: string, jobs: Array<[string, string[]]>): Record<string, unknown> {
  return {
    checksum,
    version: 'sourceplane.io/v1',
    createdAt: '2026-05-02T10:00:00Z',
    jobs: jobs.map(([jobId, deps]) => ({
      jobId,
      component: jobId.split('@')[0],
      deps,
      steps: [{ stepId: 'smoke', uses: 'run', with: { raw: 'echo ok' } }]
    }))
  }
}

function err(code: string, error: string): { error: string; code: string } {
  return { error, code }
}

const claimPath = (runId: string, jobId: string, action = 'claim'): string =>
  `/v1/runs/${enc(runId)}/jobs/${enc(jobId)}/${action}`

describe.each(BACKEND_BUILDS)('build %s', (build: BackendBuild) => {
  describe('routing, health and the error envelope', () => {
    let server: CoordinationServer
    let token: string
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false
      })
      token = await server.mintToken()
    })
    afterAll(() => server.close())

    test('health, 404, 405 and bare 500', async () => {
      await runTable(
        server,
        [
          {
            name: 'GET / needs no auth',
            path: '/',
            token: null,
            expect: {
              status: 200,
              body: { status: 'ok', service: 'orun-api' },
              headers: { 'content-type': 'application/json' }
            }
          },
          {
            name: 'unknown path',
            path: '/v2/nothing',
            token: null,
            expect: { status: 404, body: err('NOT_FOUND', 'Not found') }
          },
          {
            name: 'POST / is not a route',
            method: 'POST',
            path: '/',
            expect: { status: 404, body: err('NOT_FOUND', 'Not found') }
          },
          {
            name: 'trailing slash is not a route',
            path: '/v1/runs/',
            expect: { status: 404, body: err('NOT_FOUND', 'Not found') }
          },
          {
            name: 'GET on create run',
            path: '/v1/runs',
            expect: { status: 405, body: err('INVALID_REQUEST', 'Method not allowed') }
          },
          {
            name: 'GET on claim',
            path: claimPath('r', 'j'),
            expect: { status: 405, body: err('INVALID_REQUEST', 'Method not allowed') }
          },
          {
            name: 'DELETE on logs',
            method: 'DELETE',
            path: '/v1/runs/r/logs/j',
            token: null,
            expect: { status: 405, body: err('INVALID_REQUEST', 'Method not allowed') }
          },
          {
            name: 'malformed percent-encoding in a job id',
            path: '/v1/runs/r/jobs/%zz/claim',
            json: { runnerId: 'r1' },
            expect: { status: 500, text: '', headers: { 'content-type': null } }
          },
          {
            name: 'malformed percent-encoding is answered before auth',
            path: '/v1/runs/%E0%A4%A/jobs',
            token: null,
            expect: { status: 500, text: '' }
          },
          {
            name: 'CORS preflight',
            method: 'OPTIONS',
            path: '/v1/runs',
            token: null,
            expect: { status: 204, headers: { 'access-control-allow-origin': '*' } }
          }
        ],
        token
      )
    })
  })

  describe('create and join a run', () => {
    let server: CoordinationServer
    let token: string
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false
      })
      token = await server.mintToken()
    })
    afterAll(() => server.close())

    test('create, idempotent join, conflict and validation quirks', async () => {
      const good = plan('0b673779a274', [
        ['foundation@dev.smoke', []],
        ['api@dev.smoke', ['foundation@dev.smoke']]
      ])
      const create = await send(
        server,
        {
          name: 'create',
          path: '/v1/runs',
          json: { plan: good, runId: 'gha-1-1-0b67', triggerType: 'ci', actor: 'octocat' },
          expect: { status: 201 }
        },
        token
      )
      expect(create.status).toBe(201)
      expect(create.body).toEqual({ runId: 'gha-1-1-0b67', status: 'running', createdAt: iso })
      const createdAt = (create.body as { createdAt: string }).createdAt
      await sleep(5)

      await runTable(
        server,
        [
          {
            name: 'join with the same checksum answers 200 and the current time',
            path: '/v1/runs',
            json: { plan: good, runId: 'gha-1-1-0b67' },
            expect: {
              status: 200,
              body: {
                runId: 'gha-1-1-0b67',
                status: 'running',
                createdAt: expect.not.stringMatching(`^${createdAt}$`)
              }
            }
          },
          {
            name: 'the run keeps its original createdAt',
            path: '/v1/runs/gha-1-1-0b67',
            expect: {
              status: 200,
              body: {
                run: expect.objectContaining({ createdAt, planChecksum: '0b673779a274' })
              }
            }
          },
          {
            name: 'different checksum',
            path: '/v1/runs',
            json: { plan: plan('ffffffffffff', [['x', []]]), runId: 'gha-1-1-0b67' },
            expect: {
              status: 409,
              body: err('CONFLICT', 'Run already exists with a different plan checksum')
            }
          },
          {
            name: 'missing checksum',
            path: '/v1/runs',
            json: { plan: { jobs: [] }, runId: 'v1' },
            expect: { status: 400, body: err('INVALID_REQUEST', 'Missing or invalid plan') }
          },
          {
            name: 'missing jobs',
            path: '/v1/runs',
            json: { plan: { checksum: 'abc' }, runId: 'v2' },
            expect: { status: 400, body: err('INVALID_REQUEST', 'Missing or invalid plan') }
          },
          {
            name: 'missing plan',
            path: '/v1/runs',
            json: { runId: 'v3' },
            expect: { status: 400, body: err('INVALID_REQUEST', 'Missing or invalid plan') }
          },
          {
            name: 'body is not JSON',
            path: '/v1/runs',
            raw: '{"plan":',
            expect: { status: 400, body: err('INVALID_REQUEST', 'Invalid JSON body') }
          },
          {
            name: 'empty runId',
            path: '/v1/runs',
            json: { plan: good, runId: '' },
            expect: {
              status: 400,
              body: err('INVALID_REQUEST', 'runId must be a non-empty string')
            }
          },
          {
            name: 'duplicate jobId is a 500 carrying the message',
            path: '/v1/runs',
            json: {
              plan: plan('dup', [
                ['x', []],
                ['x', []]
              ]),
              runId: 'v4'
            },
            expect: { status: 500, body: err('INTERNAL_ERROR', 'Duplicate jobId: x') }
          },
          {
            name: 'dangling dependency is a 500 carrying the message',
            path: '/v1/runs',
            json: { plan: plan('dangle', [['x', ['nope']]]), runId: 'v5' },
            expect: {
              status: 500,
              body: err('INTERNAL_ERROR', 'Dependency "nope" in job "x" does not exist in plan')
            }
          },
          {
            name: 'empty jobId is a 500 too',
            path: '/v1/runs',
            json: { plan: plan('empty', [['', []]]), runId: 'v6' },
            expect: {
              status: 500,
              body: err('INTERNAL_ERROR', 'Every plan job must have a non-empty jobId')
            }
          },
          {
            name: 'refused plans leave no run behind',
            path: '/v1/runs/v4',
            expect: { status: 404, body: err('NOT_FOUND', 'Run not found') }
          },
          {
            name: 'a dependency cycle is accepted',
            path: '/v1/runs',
            json: {
              plan: plan('cycle', [
                ['a', ['b']],
                ['b', ['a']]
              ]),
              runId: 'cyc'
            },
            expect: { status: 201, body: { runId: 'cyc', status: 'running', createdAt: iso } }
          },
          {
            name: 'the cycle never becomes runnable',
            path: '/v1/runs/cyc/runnable',
            expect: { status: 200, body: { jobs: [] } }
          },
          {
            name: 'a cycle member waits forever',
            path: claimPath('cyc', 'a'),
            json: { runnerId: 'r1' },
            expect: {
              status: 200,
              body: { claimed: false, currentStatus: 'pending', depsWaiting: true }
            }
          }
        ],
        token
      )
    })

    test('without a runId the server generates a UUID', async () => {
      const answer = await send(
        server,
        {
          name: 'create',
          path: '/v1/runs',
          json: { plan: plan('u1', []) },
          expect: { status: 201 }
        },
        token
      )
      expect(answer.status).toBe(201)
      const runId = (answer.body as { runId: string }).runId
      expect(runId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
      await runTable(
        server,
        [
          {
            name: 'the generated run exists',
            path: `/v1/runs/${runId}`,
            expect: {
              status: 200,
              body: { run: expect.objectContaining({ runId, jobTotal: 0, status: 'running' }) }
            }
          }
        ],
        token
      )
    })
  })

  describe('claims, heartbeats, updates and reads', () => {
    let server: CoordinationServer
    let token: string
    const runId = 'gha-42-1-abcdef'
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false
      })
      token = await server.mintToken()
    })
    afterAll(() => server.close())

    test('every claim outcome and the update/heartbeat rules', async () => {
      const lib = 'lib@dev.build'
      const flaky = 'flaky@dev.build'
      const api = 'api@dev.smoke'
      const mixed = 'mixed@dev.smoke'
      const web = 'web@dev.smoke'
      const claimed = (runnerId: string, jobId: string, body: unknown, name: string): Step => ({
        name,
        path: claimPath(runId, jobId),
        json: { runnerId },
        expect: { status: 200, body }
      })
      await runTable(
        server,
        [
          {
            name: 'claim before the run exists is the transient 404',
            path: claimPath(runId, lib),
            json: { runnerId: 'r1' },
            expect: { status: 404, body: err('NOT_FOUND', 'Coordinator not initialized') }
          },
          {
            name: 'create',
            path: '/v1/runs',
            json: {
              runId,
              plan: plan('abcdef', [
                [lib, []],
                [flaky, []],
                [api, [lib]],
                [mixed, [flaky, api]],
                [web, [api]]
              ])
            },
            expect: { status: 201 }
          },
          {
            name: 'runnable: roots only',
            path: `/v1/runs/${runId}/runnable`,
            expect: { status: 200, body: { jobs: [lib, flaky] } }
          },
          claimed(
            'r1',
            api,
            { claimed: false, currentStatus: 'pending', depsWaiting: true },
            'dep pending: wait'
          ),
          claimed('r1', lib, { claimed: true }, 'claim a root'),
          claimed('r2', lib, { claimed: false, currentStatus: 'running' }, 'another live owner'),
          claimed('r1', lib, { claimed: false, currentStatus: 'running' }, 'own job re-claim'),
          {
            name: 'job status while running',
            path: `/v1/runs/${runId}/jobs/${enc(lib)}/status`,
            expect: {
              status: 200,
              body: {
                jobId: lib,
                component: 'lib',
                status: 'running',
                deps: [],
                runnerId: 'r1',
                startedAt: iso,
                finishedAt: null,
                lastError: null,
                heartbeatAt: iso
              }
            }
          },
          {
            name: 'owner heartbeat',
            path: claimPath(runId, lib, 'heartbeat'),
            json: { runnerId: 'r1' },
            expect: { status: 200, body: { ok: true } }
          },
          {
            name: 'stranger heartbeat aborts',
            path: claimPath(runId, lib, 'heartbeat'),
            json: { runnerId: 'r2' },
            expect: { status: 200, body: { ok: false, abort: true } }
          },
          {
            name: 'heartbeat on a pending job aborts',
            path: claimPath(runId, api, 'heartbeat'),
            json: { runnerId: 'r1' },
            expect: { status: 200, body: { ok: false, abort: true } }
          },
          {
            name: 'update by a stranger',
            path: claimPath(runId, lib, 'update'),
            json: { runnerId: 'r2', status: 'success' },
            expect: { status: 400, body: err('INVALID_REQUEST', 'Runner does not own this job') }
          },
          {
            name: 'update with a bad status',
            path: claimPath(runId, lib, 'update'),
            json: { runnerId: 'r1', status: 'done' },
            expect: { status: 400, body: err('INVALID_REQUEST', 'Invalid status') }
          },
          {
            name: 'update without runnerId',
            path: claimPath(runId, lib, 'update'),
            json: { status: 'success' },
            expect: { status: 400, body: err('INVALID_REQUEST', 'Missing runnerId') }
          },
          {
            name: 'update of a pending job',
            path: claimPath(runId, api, 'update'),
            json: { runnerId: 'r1', status: 'success' },
            expect: {
              status: 400,
              body: err('INVALID_REQUEST', 'Job is not running (current: pending)')
            }
          },
          {
            name: 'owner finishes',
            path: claimPath(runId, lib, 'update'),
            json: { runnerId: 'r1', status: 'success' },
            expect: { status: 200, body: { ok: true } }
          },
          {
            name: 'not-running is checked before ownership',
            path: claimPath(runId, lib, 'update'),
            json: { runnerId: 'r2', status: 'failed' },
            expect: {
              status: 400,
              body: err('INVALID_REQUEST', 'Job is not running (current: success)')
            }
          },
          {
            name: 'heartbeat after the end aborts',
            path: claimPath(runId, lib, 'heartbeat'),
            json: { runnerId: 'r1' },
            expect: { status: 200, body: { ok: false, abort: true } }
          },
          claimed('r3', lib, { claimed: false, currentStatus: 'success' }, 'already done'),
          {
            name: 'runnable after the first success',
            path: `/v1/runs/${runId}/runnable`,
            expect: { status: 200, body: { jobs: [flaky, api] } }
          },
          {
            name: 'run still running with one job done',
            path: `/v1/runs/${runId}`,
            expect: {
              status: 200,
              body: {
                run: {
                  runId,
                  namespace: { namespaceId: '1001', namespaceSlug: 'acme/monorepo' },
                  status: 'running',
                  planChecksum: 'abcdef',
                  createdAt: iso,
                  updatedAt: iso,
                  finishedAt: null,
                  jobTotal: 5,
                  jobDone: 1,
                  jobFailed: 0
                }
              }
            }
          },
          claimed('r2', flaky, { claimed: true }, 'claim the flaky root'),
          {
            name: 'it fails',
            path: claimPath(runId, flaky, 'update'),
            json: { runnerId: 'r2', status: 'failed', error: 'exit status 3' },
            expect: { status: 200, body: { ok: true } }
          },
          claimed('r3', flaky, { claimed: false, currentStatus: 'failed' }, 'already failed'),
          claimed(
            'r3',
            mixed,
            { claimed: false, currentStatus: 'pending', depsBlocked: true },
            'blocked wins over waiting'
          ),
          claimed(
            'r3',
            web,
            { claimed: false, currentStatus: 'pending', depsWaiting: true },
            'dep not yet run'
          ),
          {
            name: 'runnable excludes blocked jobs',
            path: `/v1/runs/${runId}/runnable`,
            expect: { status: 200, body: { jobs: [api] } }
          },
          {
            name: 'failed rollup',
            path: `/v1/runs/${runId}`,
            expect: {
              status: 200,
              body: {
                run: expect.objectContaining({
                  status: 'failed',
                  jobTotal: 5,
                  jobDone: 1,
                  jobFailed: 1,
                  finishedAt: iso
                })
              }
            }
          },
          {
            name: 'the failure is recorded',
            path: `/v1/runs/${runId}/jobs/${enc(flaky)}/status`,
            expect: {
              status: 200,
              body: expect.objectContaining({
                status: 'failed',
                runnerId: 'r2',
                finishedAt: iso,
                lastError: 'exit status 3'
              })
            }
          },
          {
            name: 'list jobs',
            path: `/v1/runs/${runId}/jobs`,
            expect: {
              status: 200,
              body: {
                jobs: [
                  {
                    jobId: lib,
                    component: 'lib',
                    status: 'success',
                    deps: [],
                    runnerId: 'r1',
                    startedAt: iso,
                    finishedAt: iso,
                    lastError: null,
                    heartbeatAt: iso,
                    logRef: null
                  },
                  expect.objectContaining({ jobId: flaky, status: 'failed' }),
                  expect.objectContaining({ jobId: api, status: 'pending', deps: [lib] }),
                  expect.objectContaining({ jobId: mixed, status: 'pending', runnerId: null }),
                  expect.objectContaining({ jobId: web, status: 'pending', heartbeatAt: null })
                ]
              }
            }
          }
        ],
        token
      )
      expect(server.jobsOf(runId).map(j => [j.jobId, j.status, j.claims])).toEqual([
        [lib, 'success', 1],
        [flaky, 'failed', 1],
        [api, 'pending', 0],
        [mixed, 'pending', 0],
        [web, 'pending', 0]
      ])
    })

    test('bad bodies, unknown runs and unknown jobs', async () => {
      await runTable(
        server,
        [
          {
            name: 'create',
            path: '/v1/runs',
            json: { runId: 'errs', plan: plan('e', [['only', []]]) },
            expect: { status: 201 }
          },
          {
            name: 'claim with a non-JSON body',
            path: claimPath('errs', 'only'),
            raw: 'runnerId=r1',
            expect: { status: 400, body: err('INVALID_REQUEST', 'Invalid JSON body') }
          },
          {
            name: 'claim with a JSON array body',
            path: claimPath('errs', 'only'),
            json: ['r1'],
            expect: { status: 400, body: err('INVALID_REQUEST', 'Invalid JSON body') }
          },
          {
            name: 'claim without runnerId',
            path: claimPath('errs', 'only'),
            json: {},
            expect: { status: 400, body: err('INVALID_REQUEST', 'Missing runnerId') }
          },
          {
            name: 'heartbeat without runnerId',
            path: claimPath('errs', 'only', 'heartbeat'),
            json: { runnerId: '' },
            expect: { status: 400, body: err('INVALID_REQUEST', 'Missing runnerId') }
          },
          {
            name: 'claim an unknown job',
            path: claimPath('errs', 'ghost'),
            json: { runnerId: 'r1' },
            expect: { status: 404, body: err('NOT_FOUND', 'Job not found') }
          },
          {
            name: 'heartbeat an unknown job',
            path: claimPath('errs', 'ghost', 'heartbeat'),
            json: { runnerId: 'r1' },
            expect: { status: 404, body: err('NOT_FOUND', 'Job not found') }
          },
          {
            name: 'update an unknown job',
            path: claimPath('errs', 'ghost', 'update'),
            json: { runnerId: 'r1', status: 'success' },
            expect: { status: 404, body: err('NOT_FOUND', 'Job not found') }
          },
          {
            name: 'status of an unknown job',
            path: '/v1/runs/errs/jobs/ghost/status',
            expect: { status: 404, body: err('NOT_FOUND', 'Job not found') }
          },
          ...(
            [
              ['claim', claimPath('nope', 'only'), { runnerId: 'r1' }],
              ['heartbeat', claimPath('nope', 'only', 'heartbeat'), { runnerId: 'r1' }],
              [
                'update',
                claimPath('nope', 'only', 'update'),
                { runnerId: 'r1', status: 'success' }
              ],
              ['runnable', '/v1/runs/nope/runnable', undefined],
              ['job status', '/v1/runs/nope/jobs/only/status', undefined]
            ] as Array<[string, string, unknown]>
          ).map(([what, path, json]): Step => ({
            name: `${what} on an unknown run`,
            path,
            json,
            expect: { status: 404, body: err('NOT_FOUND', 'Coordinator not initialized') }
          })),
          {
            name: 'list jobs on an unknown run: an empty list, as the service answers',
            path: '/v1/runs/nope/jobs',
            expect: { status: 200, body: { jobs: [] } }
          },
          {
            name: 'read log on an unknown run',
            path: '/v1/runs/nope/logs/only',
            expect: { status: 404, body: err('NOT_FOUND', 'Log not found') }
          },
          {
            name: 'upload log on an unknown run: the service does not check it',
            path: '/v1/runs/nope/logs/only',
            raw: 'hello',
            expect: { status: 200, body: { ok: true, logRef: '1001/runs/nope/logs/only.log' } }
          },
          {
            name: 'get an unknown run',
            path: '/v1/runs/nope',
            expect: { status: 404, body: err('NOT_FOUND', 'Run not found') }
          }
        ],
        token
      )
    })

    test('a run whose jobs all succeed is completed', async () => {
      const steps: Step[] = [
        {
          name: 'create',
          path: '/v1/runs',
          json: {
            runId: 'green',
            plan: plan('g', [
              ['a', []],
              ['b', ['a']]
            ])
          },
          expect: { status: 201 }
        }
      ]
      for (const job of ['a', 'b']) {
        steps.push(
          {
            name: `claim ${job}`,
            path: claimPath('green', job),
            json: { runnerId: `runner-${job}` },
            expect: { status: 200, body: { claimed: true } }
          },
          {
            name: `finish ${job}`,
            path: claimPath('green', job, 'update'),
            json: { runnerId: `runner-${job}`, status: 'success' },
            expect: { status: 200, body: { ok: true } }
          },
          {
            name: `rollup after ${job}`,
            path: '/v1/runs/green',
            expect: {
              status: 200,
              body: {
                run: expect.objectContaining({
                  status: job === 'a' ? 'running' : 'completed',
                  jobDone: job === 'a' ? 1 : 2,
                  jobFailed: 0,
                  jobTotal: 2
                })
              }
            }
          }
        )
      }
      await runTable(server, steps, token)
    })

    test('logs: each upload replaces, read back as text, 404 when absent', async () => {
      const job = 'api@dev.smoke'
      const logPath = `/v1/runs/logs-run/logs/${enc(job)}`
      await runTable(
        server,
        [
          {
            name: 'create',
            path: '/v1/runs',
            json: { runId: 'logs-run', plan: plan('l', [[job, []]]) },
            expect: { status: 201 }
          },
          {
            name: 'no log yet',
            path: logPath,
            expect: { status: 404, body: err('NOT_FOUND', 'Log not found') }
          },
          {
            name: 'first upload',
            path: logPath,
            raw: 'line 1\n',
            expect: {
              status: 200,
              body: { ok: true, logRef: `1001/runs/logs-run/logs/${job}.log` }
            }
          },
          {
            name: 'read it',
            path: logPath,
            expect: {
              status: 200,
              text: 'line 1\n',
              headers: { 'content-type': 'text/plain; charset=utf-8' }
            }
          },
          {
            name: 'second upload replaces',
            path: logPath,
            raw: 'line 1\nline 2\n',
            expect: {
              status: 200,
              body: { ok: true, logRef: `1001/runs/logs-run/logs/${job}.log` }
            }
          },
          {
            name: 'last upload wins',
            path: logPath,
            expect: { status: 200, text: 'line 1\nline 2\n' }
          },
          {
            name: 'a shorter upload replaces too',
            path: logPath,
            raw: 'done',
            expect: { status: 200 }
          },
          { name: 'not appended', path: logPath, expect: { status: 200, text: 'done' } },
          {
            name: 'logs are per job',
            path: '/v1/runs/logs-run/logs/other',
            expect: { status: 404, body: err('NOT_FOUND', 'Log not found') }
          }
        ],
        token
      )
    })
  })

  describe('takeover after a stale heartbeat', () => {
    // The server's clock: moved on by hand instead of sleeping, so a busy machine cannot
    // stretch a wait past a timeout.
    let clock = Date.now()
    let server: CoordinationServer
    let token: string
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false,
        heartbeatTimeoutMs: 400,
        now: () => clock
      })
      token = await server.mintToken()
    })
    afterAll(() => server.close())

    test('a live heartbeat keeps the owner, a stale one hands the job over', async () => {
      const steps = (rows: Step[]): Promise<void> => runTable(server, rows, token)
      await steps([
        {
          name: 'create',
          path: '/v1/runs',
          json: { runId: 'tk', plan: plan('t', [['slow', []]]) },
          expect: { status: 201 }
        },
        {
          name: 'r1 claims',
          path: claimPath('tk', 'slow'),
          json: { runnerId: 'r1' },
          expect: { status: 200, body: { claimed: true } }
        }
      ])
      clock += 250
      await steps([
        {
          name: 'r1 heartbeats in time',
          path: claimPath('tk', 'slow', 'heartbeat'),
          json: { runnerId: 'r1' },
          expect: { status: 200, body: { ok: true } }
        }
      ])
      clock += 250
      await steps([
        {
          name: 'fresh heartbeat: no takeover though the claim is older than the timeout',
          path: claimPath('tk', 'slow'),
          json: { runnerId: 'r2' },
          expect: { status: 200, body: { claimed: false, currentStatus: 'running' } }
        }
      ])
      const startedAt = server.jobsOf('tk')[0].startedAt
      clock += 550
      await steps([
        {
          name: 'stale heartbeat: takeover',
          path: claimPath('tk', 'slow'),
          json: { runnerId: 'r2' },
          expect: { status: 200, body: { claimed: true, takeover: true } }
        },
        {
          name: 'the new owner is live again at once',
          path: claimPath('tk', 'slow'),
          json: { runnerId: 'r3' },
          expect: { status: 200, body: { claimed: false, currentStatus: 'running' } }
        },
        {
          name: 'old owner heartbeat aborts',
          path: claimPath('tk', 'slow', 'heartbeat'),
          json: { runnerId: 'r1' },
          expect: { status: 200, body: { ok: false, abort: true } }
        },
        {
          name: 'old owner update refused',
          path: claimPath('tk', 'slow', 'update'),
          json: { runnerId: 'r1', status: 'success' },
          expect: { status: 400, body: err('INVALID_REQUEST', 'Runner does not own this job') }
        },
        {
          name: 'new owner heartbeat',
          path: claimPath('tk', 'slow', 'heartbeat'),
          json: { runnerId: 'r2' },
          expect: { status: 200, body: { ok: true } }
        },
        {
          name: 'new owner finishes',
          path: claimPath('tk', 'slow', 'update'),
          json: { runnerId: 'r2', status: 'success' },
          expect: { status: 200, body: { ok: true } }
        }
      ])
      expect(server.jobsOf('tk')).toEqual([
        {
          jobId: 'slow',
          status: 'success',
          runnerId: 'r2',
          startedAt,
          finishedAt: iso,
          lastError: null,
          claims: 2
        }
      ])
    })

    test('setOptions changes the timeout for later claims', async () => {
      server.setOptions({ heartbeatTimeoutMs: 60_000 })
      await runTable(
        server,
        [
          {
            name: 'create',
            path: '/v1/runs',
            json: { runId: 'tk2', plan: plan('t2', [['job', []]]) },
            expect: { status: 201 }
          },
          {
            name: 'claim',
            path: claimPath('tk2', 'job'),
            json: { runnerId: 'r1' },
            expect: { status: 200, body: { claimed: true } }
          }
        ],
        token
      )
      clock += 500
      await runTable(
        server,
        [
          {
            name: 'not stale under the longer timeout',
            path: claimPath('tk2', 'job'),
            json: { runnerId: 'r2' },
            expect: { status: 200, body: { claimed: false, currentStatus: 'running' } }
          }
        ],
        token
      )
    })
  })

  describe('authentication', () => {
    let server: CoordinationServer
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false
      })
      const token = await server.mintToken()
      await runTable(
        server,
        [
          {
            name: 'create',
            path: '/v1/runs',
            json: { runId: 'auth', plan: plan('a', [['j', []]]) },
            expect: { status: 201 }
          }
        ],
        token
      )
    })
    afterAll(() => server.close())

    test('every token fault is a 401 with its own message', async () => {
      const valid = await server.mintToken()
      const [head, payload, signature] = valid.split('.')
      const claims = decodeJwt(valid)
      const tampered = [
        head,
        Buffer.from(JSON.stringify({ ...claims, repository_id: '9' })).toString('base64url'),
        signature
      ].join('.')
      const hs256 = await new SignJWT({ ...claims })
        .setProtectedHeader({ alg: 'HS256', kid: decodeProtectedHeader(valid).kid })
        .sign(new TextEncoder().encode('a-shared-secret-that-is-long-enough'))
      const cases: Array<[string, Partial<Step>, string]> = [
        ['no header', { token: null }, 'Missing authorization header'],
        ['not a bearer', { authorization: `Basic ${valid}` }, 'Missing authorization header'],
        ['expired', { token: await server.mintToken({ expiresInSeconds: -5 }) }, 'Token expired'],
        [
          'no exp at all',
          { token: await server.mintToken({ claims: { exp: undefined } }) },
          'Token expired'
        ],
        [
          'wrong audience',
          { token: await server.mintToken({ audience: 'nope' }) },
          'Invalid audience'
        ],
        [
          'unknown kid',
          { token: await server.mintToken({ kid: 'rotated-away' }) },
          'Unknown key ID'
        ],
        [
          'foreign signing key',
          { token: await server.mintToken({ signWithForeignKey: true }) },
          'Invalid OIDC signature'
        ],
        ['tampered payload', { token: tampered }, 'Invalid OIDC signature'],
        [
          'wrong issuer',
          { token: await server.mintToken({ issuer: 'https://evil.example' }) },
          'Invalid issuer'
        ],
        [
          'numeric repository_id',
          { token: await server.mintToken({ claims: { repository_id: 1001 } }) },
          'Missing required claim: repository_id'
        ],
        [
          'missing actor',
          { token: await server.mintToken({ claims: { actor: undefined } }) },
          'Missing required claim: actor'
        ],
        [
          'issued in the future',
          {
            token: await server.mintToken({ claims: { iat: Math.floor(Date.now() / 1000) + 600 } })
          },
          'Token not yet valid'
        ],
        ['HS256', { token: hs256 }, 'Unsupported algorithm'],
        ['not a JWT', { token: 'orun_static_token' }, 'Malformed JWT: expected 3 segments'],
        ['garbage header', { token: `!!.${payload}.${signature}` }, 'Malformed JWT header']
      ]
      for (const path of ['/v1/runs/auth', claimPath('auth', 'j')]) {
        const isClaim = path.endsWith('/claim')
        await runTable(
          server,
          cases.map(([name, step, message]) => ({
            name: `${name} on ${path}`,
            path,
            json: isClaim ? { runnerId: 'r1' } : undefined,
            ...step,
            expect: { status: 401, body: err('UNAUTHORIZED', message) }
          }))
        )
      }
      await runTable(server, [
        {
          name: 'the valid token passes',
          path: '/v1/runs/auth',
          token: valid,
          expect: { status: 200 }
        },
        {
          name: 'an array audience containing orun passes',
          path: '/v1/runs/auth',
          token: await server.mintToken({ claims: { aud: ['other', 'orun'] } }),
          expect: { status: 200 }
        }
      ])
      expect(server.jobsOf('auth')[0].claims).toBe(0)
    })

    test('a custom audience is enforced', async () => {
      const custom = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false,
        audience: 'my-backend'
      })
      try {
        await runTable(custom, [
          {
            name: 'orun audience refused',
            path: '/v1/runs/x',
            token: await custom.mintToken({ audience: 'orun' }),
            expect: { status: 401, body: err('UNAUTHORIZED', 'Invalid audience') }
          },
          {
            name: 'default mint uses the configured audience',
            path: '/v1/runs/x',
            token: await custom.mintToken(),
            expect: { status: 404, body: err('NOT_FOUND', 'Run not found') }
          }
        ])
      } finally {
        await custom.close()
      }
    })

    test('the served JWKS verifies the minted tokens', async () => {
      const jwks = (await (await fetch(`${server.url}/.well-known/jwks`)).json()) as {
        keys: Array<{ kid: string; kty: string; alg: string }>
      }
      expect(jwks.keys).toHaveLength(1)
      expect(jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256' })
      const token = await server.mintToken()
      expect(decodeProtectedHeader(token)).toEqual({
        alg: 'RS256',
        typ: 'JWT',
        kid: jwks.keys[0].kid
      })
      const verified = await jwtVerify(token, createLocalJWKSet(jwks as never), {
        issuer: 'https://token.actions.githubusercontent.com',
        audience: 'orun'
      })
      expect(verified.payload).toMatchObject({ ...defaultIdentity })
      await expect(
        jwtVerify(
          await server.mintToken({ signWithForeignKey: true }),
          createLocalJWKSet(jwks as never)
        )
      ).rejects.toThrow()
    })
  })

  describe('tenancy', () => {
    let server: CoordinationServer
    let mine: string
    let theirs: string
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false
      })
      mine = await server.mintToken()
      theirs = await server.mintToken({ identity: otherRepo })
    })
    afterAll(() => server.close())

    test('a run is invisible to another repository', async () => {
      await runTable(
        server,
        [
          {
            name: 'create in 1001',
            path: '/v1/runs',
            json: { runId: 'shared-id', plan: plan('mine', [['j', []]]) },
            expect: { status: 201 }
          },
          {
            name: 'upload a log in 1001',
            path: '/v1/runs/shared-id/logs/j',
            raw: 'secret',
            expect: { status: 200 }
          },
          {
            name: 'other repo cannot read the run',
            path: '/v1/runs/shared-id',
            token: theirs,
            expect: { status: 404, body: err('NOT_FOUND', 'Run not found') }
          },
          {
            name: 'other repo cannot claim',
            path: claimPath('shared-id', 'j'),
            token: theirs,
            json: { runnerId: 'x' },
            expect: { status: 404, body: err('NOT_FOUND', 'Coordinator not initialized') }
          },
          {
            name: 'other repo lists no jobs',
            path: '/v1/runs/shared-id/jobs',
            token: theirs,
            expect: { status: 200, body: { jobs: [] } }
          },
          {
            name: 'other repo cannot read the log',
            path: '/v1/runs/shared-id/logs/j',
            token: theirs,
            expect: { status: 404, body: err('NOT_FOUND', 'Log not found') }
          },
          {
            name: 'the same run id in another namespace is another run',
            path: '/v1/runs',
            token: theirs,
            json: { runId: 'shared-id', plan: plan('theirs', [['k', []]]) },
            expect: { status: 201 }
          },
          {
            name: 'their log ref names their namespace',
            path: '/v1/runs/shared-id/logs/k',
            token: theirs,
            raw: 'x',
            expect: { status: 200, body: { ok: true, logRef: '3003/runs/shared-id/logs/k.log' } }
          },
          {
            name: 'mine is untouched',
            path: '/v1/runs/shared-id',
            expect: {
              status: 200,
              body: {
                run: expect.objectContaining({
                  planChecksum: 'mine',
                  namespace: { namespaceId: '1001', namespaceSlug: 'acme/monorepo' }
                })
              }
            }
          },
          {
            name: 'theirs is theirs',
            path: '/v1/runs/shared-id',
            token: theirs,
            expect: {
              status: 200,
              body: {
                run: expect.objectContaining({
                  planChecksum: 'theirs',
                  namespace: { namespaceId: '3003', namespaceSlug: 'evil/fork' }
                })
              }
            }
          }
        ],
        mine
      )
      expect(server.jobsOf('shared-id').map(j => j.jobId)).toEqual(['j'])
      expect(server.jobsOf('shared-id', '3003').map(j => j.jobId)).toEqual(['k'])
      expect(server.jobsOf('no-such-run')).toEqual([])
    })
  })

  describe('session tokens', () => {
    let server: CoordinationServer
    let oidc: string
    const session = 'orun_cli_session_abc'
    const dashboard = 'orun_dashboard_session_xyz'
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false,
        sessionTokens: [session],
        dashboardSessionTokens: [dashboard]
      })
      oidc = await server.mintToken()
      await runTable(
        server,
        [
          {
            name: 'create',
            path: '/v1/runs',
            json: { runId: 'sess', plan: plan('s', [['j', []]]) },
            expect: { status: 201 }
          },
          { name: 'log', path: '/v1/runs/sess/logs/j', raw: 'out', expect: { status: 200 } }
        ],
        oidc
      )
    })
    afterAll(() => server.close())

    test('read routes accept a CLI session; the job routes only on 2026-05-08', async () => {
      const forbidden = { status: 403, body: err('FORBIDDEN', 'OIDC authentication required') }
      // 2026-05-08 opens the job routes to a CLI session; 2026-05-02 keeps them OIDC-only.
      const jobRoute = (answer: Expected): Expected => (build === '2026-05-08' ? answer : forbidden)
      await runTable(
        server,
        [
          {
            name: 'get run',
            path: '/v1/runs/sess',
            expect: { status: 200, body: { run: expect.objectContaining({ runId: 'sess' }) } }
          },
          {
            name: 'list jobs',
            path: '/v1/runs/sess/jobs',
            expect: { status: 200, body: { jobs: [expect.objectContaining({ jobId: 'j' })] } }
          },
          {
            name: 'job status',
            path: '/v1/runs/sess/jobs/j/status',
            expect: { status: 200, body: expect.objectContaining({ status: 'pending' }) }
          },
          { name: 'read log', path: '/v1/runs/sess/logs/j', expect: { status: 200, text: 'out' } },
          {
            name: 'create run',
            path: '/v1/runs',
            json: { runId: 'sess2', plan: plan('s', []) },
            expect: forbidden
          },
          {
            name: 'claim',
            path: claimPath('sess', 'j'),
            json: { runnerId: 'r' },
            expect: jobRoute({ status: 200, body: { claimed: true } })
          },
          {
            name: 'heartbeat',
            path: claimPath('sess', 'j', 'heartbeat'),
            json: { runnerId: 'r' },
            expect: jobRoute({ status: 200, body: { ok: true } })
          },
          {
            name: 'update',
            path: claimPath('sess', 'j', 'update'),
            json: { runnerId: 'r', status: 'success' },
            expect: jobRoute({ status: 200, body: { ok: true } })
          },
          {
            name: 'runnable',
            path: '/v1/runs/sess/runnable',
            expect: jobRoute({ status: 200, body: { jobs: [] } })
          },
          {
            name: 'upload log',
            path: '/v1/runs/sess/logs/j',
            raw: 'x',
            expect: jobRoute({ status: 200 })
          },
          {
            name: 'an unknown static token is not a session',
            path: '/v1/runs/sess',
            token: 'orun_cli_session_other',
            expect: { status: 401, body: err('UNAUTHORIZED', 'Malformed JWT: expected 3 segments') }
          }
        ],
        session
      )
      expect(server.jobsOf('sess')[0].status).toBe(build === '2026-05-08' ? 'success' : 'pending')
    })

    test('a dashboard session reads, and gets 403 on every job route on both builds', async () => {
      const forbidden = {
        status: 403,
        body: err(
          'FORBIDDEN',
          build === '2026-05-08'
            ? 'OIDC or CLI session authentication required'
            : 'OIDC authentication required'
        )
      }
      await runTable(
        server,
        [
          {
            name: 'create',
            path: '/v1/runs',
            json: { runId: 'dash', plan: plan('d', [['j', []]]) },
            token: oidc,
            expect: { status: 201 }
          },
          { name: 'get run', path: '/v1/runs/dash', expect: { status: 200 } },
          { name: 'list jobs', path: '/v1/runs/dash/jobs', expect: { status: 200 } },
          {
            name: 'create run',
            path: '/v1/runs',
            json: { runId: 'dash2', plan: plan('d', []) },
            expect: { status: 403, body: err('FORBIDDEN', 'OIDC authentication required') }
          },
          {
            name: 'claim',
            path: claimPath('dash', 'j'),
            json: { runnerId: 'r' },
            expect: forbidden
          },
          {
            name: 'heartbeat',
            path: claimPath('dash', 'j', 'heartbeat'),
            json: { runnerId: 'r' },
            expect: forbidden
          },
          {
            name: 'update',
            path: claimPath('dash', 'j', 'update'),
            json: { runnerId: 'r', status: 'success' },
            expect: forbidden
          },
          { name: 'runnable', path: '/v1/runs/dash/runnable', expect: forbidden },
          { name: 'upload log', path: '/v1/runs/dash/logs/j', raw: 'x', expect: forbidden }
        ],
        dashboard
      )
      expect(server.jobsOf('dash')[0].status).toBe('pending')
    })
  })

  describe('rate limit', () => {
    // The server's clock: moved on by hand instead of sleeping, so a busy machine cannot
    // stretch a wait past a timeout.
    let clock = Date.now()
    let server: CoordinationServer
    beforeAll(async () => {
      // The bucket is under test: the clock stands still during the burst, then moves on.
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        latencyMs: false,
        now: () => clock
      })
    })
    afterAll(() => server.close())
    const { burst, perSecond } = BUILD_RATE_LIMITS[build]

    const limited = {
      status: 429,
      body: err('RATE_LIMITED', 'Rate limit exceeded'),
      headers: {
        'retry-after': '1',
        'x-ratelimit-limit': String(burst),
        'x-ratelimit-remaining': '0'
      }
    }
    const noRateHeaders = {
      'retry-after': null,
      'x-ratelimit-limit': null,
      'x-ratelimit-remaining': null
    }

    test(`burst of ${burst}, the next is refused, ${perSecond} more after a second`, async () => {
      const identity = { repository: 'rl/one', repository_id: '7001' }
      const token = await server.mintToken({ identity })
      const requests: Step[] = [
        {
          name: 'request 1 creates',
          path: '/v1/runs',
          json: { runId: 'rl', plan: plan('rl', [['j', []]]) },
          expect: { status: 201, headers: noRateHeaders }
        }
      ]
      for (let i = 2; i <= burst; i++) {
        requests.push({
          name: `request ${i}`,
          path: i % 2 ? '/v1/runs/rl' : '/v1/runs/missing',
          expect: { status: i % 2 ? 200 : 404, headers: noRateHeaders }
        })
      }
      requests.push({ name: `request ${burst + 1}`, path: '/v1/runs/rl', expect: limited })
      requests.push({ name: `request ${burst + 2}`, path: '/v1/runs/rl', expect: limited })
      // The clock stands still: the whole burst falls inside one refill window.
      await runTable(server, requests, token)

      await runTable(server, [
        {
          name: 'another namespace has its own bucket',
          path: '/v1/runs/rl',
          token: await server.mintToken({ identity: otherRepo }),
          expect: { status: 404 }
        },
        { name: 'health is not limited', path: '/', token: null, expect: { status: 200 } }
      ])

      clock += 1100
      const refill: Step[] = []
      for (let i = 1; i <= perSecond; i++) {
        refill.push({ name: `refill ${i}`, path: '/v1/runs/rl', expect: { status: 200 } })
      }
      refill.push({ name: `refill ${perSecond + 1}`, path: '/v1/runs/rl', expect: limited })
      await runTable(server, refill, token)
      expect(server.requests.filter(r => r.namespace === '7001' && r.status === 429)).toHaveLength(
        3
      )
    })

    test('unauthenticated requests do not spend the bucket', async () => {
      const identity = { repository: 'rl/two', repository_id: '7002' }
      const expired = await server.mintToken({ identity, expiresInSeconds: -1 })
      const token = await server.mintToken({ identity })
      const steps: Step[] = []
      for (let i = 1; i <= 25; i++) {
        steps.push({
          name: `expired ${i}`,
          path: '/v1/runs/x',
          token: expired,
          expect: { status: 401 }
        })
      }
      for (let i = 1; i <= burst; i++) {
        steps.push({ name: `valid ${i}`, path: '/v1/runs/x', expect: { status: 404 } })
      }
      steps.push({ name: `valid ${burst + 1}`, path: '/v1/runs/x', expect: limited })
      await runTable(server, steps, token)
    })

    test('configurable and switchable', async () => {
      const token = await server.mintToken({ identity: { repository_id: '7003' } })
      server.setOptions({ rateLimit: { burst: 3, perSecond: 1 } })
      const steps: Step[] = [1, 2, 3].map(i => ({
        name: `small bucket ${i}`,
        path: '/v1/runs/x',
        expect: { status: 404 }
      }))
      steps.push({
        name: 'small bucket 4',
        path: '/v1/runs/x',
        expect: { ...limited, headers: { ...limited.headers, 'x-ratelimit-limit': '3' } }
      })
      await runTable(server, steps, token)
      server.setOptions({ rateLimit: false })
      const many: Step[] = []
      for (let i = 1; i <= 40; i++) {
        many.push({ name: `unlimited ${i}`, path: '/v1/runs/x', expect: { status: 404 } })
      }
      await runTable(server, many, token)
      server.setOptions({ rateLimit: { burst, perSecond } })
    })
  })

  describe('token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL)', () => {
    // The server's clock: moved on by hand instead of sleeping, so a busy machine cannot
    // stretch a wait past a timeout.
    let clock = Date.now()
    let server: CoordinationServer
    const saved = {
      url: process.env.ACTIONS_ID_TOKEN_REQUEST_URL,
      token: process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN
    }
    const useEnv = (env: Record<string, string>): void => {
      Object.assign(process.env, env)
    }
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false,
        now: () => clock
      })
    })
    afterEach(() => {
      for (const [key, value] of [
        ['ACTIONS_ID_TOKEN_REQUEST_URL', saved.url],
        ['ACTIONS_ID_TOKEN_REQUEST_TOKEN', saved.token]
      ] as const) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
    })
    afterAll(() => server.close())

    test('@actions/core getIDToken mints a token the backend accepts', async () => {
      const env = server.tokenEnv()
      expect(env.ACTIONS_ID_TOKEN_REQUEST_URL).toContain('?')
      useEnv(env)
      const before = server.tokensMinted
      const token = await core.getIDToken('orun')
      expect(server.tokensMinted).toBe(before + 1)
      const claims = decodeJwt(token)
      expect(claims).toMatchObject({
        ...defaultIdentity,
        aud: 'orun',
        iss: 'https://token.actions.githubusercontent.com'
      })
      expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(300)
      await runTable(
        server,
        [
          {
            name: 'create with the minted token',
            path: '/v1/runs',
            json: { runId: 'oidc', plan: plan('o', [['j', []]]) },
            expect: { status: 201 }
          }
        ],
        token
      )
      const tokenRequest = server.requests.filter(r => r.route === 'token').at(-1)
      expect(tokenRequest).toMatchObject({ method: 'GET', path: '/_oidc/token', status: 200 })
    })

    test('the identity is chosen per URL', async () => {
      useEnv(server.tokenEnv({ repository: 'evil/fork', repository_id: '3003' }))
      const token = await core.getIDToken('orun')
      expect(decodeJwt(token)).toMatchObject({
        repository: 'evil/fork',
        repository_id: '3003',
        repository_owner: defaultIdentity.repository_owner
      })
      await runTable(
        server,
        [
          {
            name: 'create as the second repository',
            path: '/v1/runs',
            json: { runId: 'second', plan: plan('s', [['k', []]]) },
            expect: { status: 201 }
          }
        ],
        token
      )
      expect(server.jobsOf('second', '3003')).toHaveLength(1)
      expect(server.jobsOf('second', '1001')).toHaveLength(0)
    })

    test('a wrong request token is refused and mints nothing', async () => {
      const env = server.tokenEnv()
      useEnv({ ...env, ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'wrong' })
      const before = server.tokensMinted
      await expect(core.getIDToken('orun')).rejects.toThrow(/401/)
      const direct = await fetch(`${env.ACTIONS_ID_TOKEN_REQUEST_URL}&audience=orun`)
      expect(direct.status).toBe(401)
      expect(await direct.json()).toEqual(err('UNAUTHORIZED', 'Invalid request token'))
      expect(server.tokensMinted).toBe(before)
    })

    test('without an audience the token is for github.com/<owner>, which the backend refuses', async () => {
      const env = server.tokenEnv()
      const res = await fetch(env.ACTIONS_ID_TOKEN_REQUEST_URL, {
        headers: { Authorization: `Bearer ${env.ACTIONS_ID_TOKEN_REQUEST_TOKEN}` }
      })
      const { value } = (await res.json()) as { value: string }
      expect(decodeJwt(value).aud).toBe('https://github.com/acme')
      await runTable(server, [
        {
          name: 'wrong audience',
          path: '/v1/runs/oidc',
          token: value,
          expect: { status: 401, body: err('UNAUTHORIZED', 'Invalid audience') }
        }
      ])
    })

    test('a short token lifetime expires', async () => {
      server.setOptions({ tokenLifetimeSeconds: 1 })
      useEnv(server.tokenEnv())
      const token = await core.getIDToken('orun')
      server.setOptions({ tokenLifetimeSeconds: 300 })
      const claims = decodeJwt(token)
      expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(1)
      await runTable(server, [
        { name: 'fresh', path: '/v1/runs/oidc', token, expect: { status: 200 } }
      ])
      clock += 2100
      await runTable(server, [
        {
          name: 'expired',
          path: '/v1/runs/oidc',
          token,
          expect: { status: 401, body: err('UNAUTHORIZED', 'Token expired') }
        }
      ])
    })
  })

  describe('fault injection', () => {
    let server: CoordinationServer
    let token: string
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false
      })
      token = await server.mintToken()
      await runTable(
        server,
        [
          {
            name: 'create',
            path: '/v1/runs',
            json: { runId: 'f', plan: plan('f', [['j', []]]) },
            expect: { status: 201 }
          }
        ],
        token
      )
    })
    afterEach(() => server.clearFaults())
    afterAll(() => server.close())

    test('status faults answer the given status and body, then normal service resumes', async () => {
      server.inject('claim', {
        kind: 'status',
        status: 503,
        count: 2,
        body: '<html>Service Unavailable</html>',
        contentType: 'text/html'
      })
      server.inject('getRun', { kind: 'status', status: 200, count: 1, body: 'not json' })
      server.inject('listJobs', { kind: 'status', status: 502, count: 1 })
      const claim: Step = {
        name: 'claim',
        path: claimPath('f', 'j'),
        json: { runnerId: 'r1' },
        expect: {
          status: 503,
          text: '<html>Service Unavailable</html>',
          headers: { 'content-type': 'text/html' }
        }
      }
      await runTable(
        server,
        [
          { ...claim, name: 'claim 1 hits the 503' },
          { ...claim, name: 'claim 2 hits the 503' },
          {
            name: 'claim 3 is served',
            path: claimPath('f', 'j'),
            json: { runnerId: 'r1' },
            expect: { status: 200, body: { claimed: true } }
          },
          {
            name: '200 with a non-JSON body',
            path: '/v1/runs/f',
            expect: {
              status: 200,
              text: 'not json',
              headers: { 'content-type': 'text/plain; charset=utf-8' }
            }
          },
          {
            name: 'a status fault without a body uses the envelope',
            path: '/v1/runs/f/jobs',
            expect: { status: 502, body: err('INTERNAL_ERROR', 'Injected fault') }
          },
          { name: 'getRun served again', path: '/v1/runs/f', expect: { status: 200 } }
        ],
        token
      )
      expect(server.jobsOf('f')[0].claims).toBe(1) // faulted claims never reached the coordinator
    })

    test('rateLimit faults look exactly like the real limiter', async () => {
      server.inject('*', { kind: 'rateLimit', count: 2 })
      const limited = {
        status: 429,
        body: err('RATE_LIMITED', 'Rate limit exceeded'),
        headers: { 'retry-after': '1', 'x-ratelimit-limit': '20', 'x-ratelimit-remaining': '0' }
      }
      await runTable(
        server,
        [
          { name: 'first', path: '/v1/runs/f/runnable', expect: limited },
          { name: 'second, even on health', path: '/', token: null, expect: limited },
          { name: 'then served', path: '/v1/runs/f/runnable', expect: { status: 200 } }
        ],
        token
      )
    })

    test('delay faults hold the answer, then serve it', async () => {
      // Long against loopback on a busy machine, so "held" and "prompt" cannot be confused.
      server.inject('heartbeat', { kind: 'delay', ms: 3_000, count: 1 })
      const started = Date.now()
      await runTable(
        server,
        [
          {
            name: 'delayed heartbeat',
            path: claimPath('f', 'j', 'heartbeat'),
            json: { runnerId: 'r1' },
            expect: { status: 200, body: { ok: true } }
          }
        ],
        token
      )
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_990)
      const again = Date.now()
      await runTable(
        server,
        [
          {
            name: 'next heartbeat is prompt',
            path: claimPath('f', 'j', 'heartbeat'),
            json: { runnerId: 'r1' },
            expect: { status: 200, body: { ok: true } }
          }
        ],
        token
      )
      expect(Date.now() - again).toBeLessThan(2_990)
    })

    test('drop faults close the socket without an answer', async () => {
      server.inject('update', { kind: 'drop', count: 1 })
      await expect(
        fetch(`${server.url}${claimPath('f', 'j', 'update')}`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ runnerId: 'r1', status: 'success' })
        })
      ).rejects.toThrow()
      expect(server.requests.at(-1)).toMatchObject({ route: 'update', status: 0 })
      expect(server.jobsOf('f')[0].status).toBe('running')
      await runTable(
        server,
        [
          {
            name: 'the retry is served',
            path: claimPath('f', 'j', 'update'),
            json: { runnerId: 'r1', status: 'success' },
            expect: { status: 200, body: { ok: true } }
          }
        ],
        token
      )
      expect(server.requests.at(-1)).toMatchObject({
        method: 'POST',
        route: 'update',
        status: 200,
        namespace: '1001',
        runnerId: 'r1',
        at: expect.any(Number)
      })
    })

    test('clearFaults removes pending faults; faults match their route only', async () => {
      server.inject('getRun', { kind: 'status', status: 500, count: 5 })
      await runTable(
        server,
        [
          { name: 'other route unaffected', path: '/v1/runs/f/jobs', expect: { status: 200 } },
          { name: 'faulted', path: '/v1/runs/f', expect: { status: 500 } }
        ],
        token
      )
      server.clearFaults()
      await runTable(
        server,
        [{ name: 'cleared', path: '/v1/runs/f', expect: { status: 200 } }],
        token
      )
    })
  })

  describe("the service's unkind parts: latency, a new run's lag, stale log reads, oversized requests", () => {
    let server: CoordinationServer
    let token: string
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        rateLimit: false,
        latencyMs: { min: 15, max: 40 },
        initLagMs: 60_000,
        logVisibilityMs: 60_000,
        maxBodyBytes: 1024
      })
      token = await server.mintToken()
    })
    afterAll(() => server.close())

    test('every request waits at least the minimum latency', async () => {
      const started = performance.now()
      await runTable(server, [{ name: 'health', path: '/', token: null, expect: { status: 200 } }])
      expect(performance.now() - started).toBeGreaterThanOrEqual(14)
    })

    test('a run just created is unknown to every route but create until its lag has passed', async () => {
      await runTable(
        server,
        [
          {
            name: 'create',
            path: '/v1/runs',
            json: { runId: 'lagging', plan: plan('lag', [['j', []]]) },
            expect: { status: 201 }
          },
          {
            name: 'join while it initialises',
            path: '/v1/runs',
            json: { runId: 'lagging', plan: plan('lag', [['j', []]]) },
            expect: { status: 200 }
          },
          {
            name: 'claim while it initialises',
            path: claimPath('lagging', 'j'),
            json: { runnerId: 'r1' },
            expect: { status: 404, body: err('NOT_FOUND', 'Coordinator not initialized') }
          },
          {
            name: 'get while it initialises',
            path: '/v1/runs/lagging',
            expect: { status: 404, body: err('NOT_FOUND', 'Run not found') }
          },
          {
            name: 'list jobs while it initialises',
            path: '/v1/runs/lagging/jobs',
            expect: { status: 200, body: { jobs: [] } }
          }
        ],
        token
      )
      server.setOptions({ initLagMs: 0 })
      await runTable(
        server,
        [
          {
            name: 'a run created with no lag',
            path: '/v1/runs',
            json: { runId: 'prompt', plan: plan('p', [['j', []]]) },
            expect: { status: 201 }
          },
          {
            name: 'claims at once',
            path: claimPath('prompt', 'j'),
            json: { runnerId: 'r1' },
            expect: { status: 200, body: { claimed: true } }
          }
        ],
        token
      )
    })

    test('a log read right after an upload answers the previous version; storedLog has the new one', async () => {
      await runTable(
        server,
        [
          { name: 'first upload', path: '/v1/runs/x/logs/j', raw: 'one', expect: { status: 200 } },
          {
            name: 'read before it is visible',
            path: '/v1/runs/x/logs/j',
            expect: { status: 404, body: err('NOT_FOUND', 'Log not found') }
          }
        ],
        token
      )
      expect(server.storedLog('x', 'j')).toBe('one')
      server.setOptions({ logVisibilityMs: 0 })
      await runTable(
        server,
        [
          {
            name: 'visible upload',
            path: '/v1/runs/x/logs/j',
            raw: 'two',
            expect: { status: 200 }
          },
          { name: 'read it', path: '/v1/runs/x/logs/j', expect: { status: 200, text: 'two' } }
        ],
        token
      )
      server.setOptions({ logVisibilityMs: 60_000 })
      await runTable(
        server,
        [
          {
            name: 'a newer upload',
            path: '/v1/runs/x/logs/j',
            raw: 'three',
            expect: { status: 200 }
          },
          {
            name: 'still the old one',
            path: '/v1/runs/x/logs/j',
            expect: { status: 200, text: 'two' }
          }
        ],
        token
      )
      expect(server.storedLog('x', 'j')).toBe('three')
    })

    test('oversized requests get the proxy answers 431 and 413, not the JSON envelope', async () => {
      await runTable(
        server,
        [
          {
            name: 'a job id longer than the proxy accepts',
            path: `/v1/runs/x/jobs/${'j'.repeat(9000)}/status`,
            expect: { status: 431, text: 'Request Header Fields Too Large' }
          },
          {
            name: 'a body over the limit',
            path: '/v1/runs/x/logs/j',
            raw: 'x'.repeat(1025),
            expect: { status: 413, text: 'Payload Too Large' }
          }
        ],
        token
      )
    })

    test('deleteRun removes a run and its logs, as the cleanup does', async () => {
      server.setOptions({ initLagMs: 0, logVisibilityMs: 0 })
      await runTable(
        server,
        [
          {
            name: 'create',
            path: '/v1/runs',
            json: { runId: 'old', plan: plan('o', [['j', []]]) },
            expect: { status: 201 }
          },
          { name: 'log', path: '/v1/runs/old/logs/j', raw: 'kept', expect: { status: 200 } }
        ],
        token
      )
      expect(server.deleteRun('old')).toBe(true)
      expect(server.deleteRun('old')).toBe(false)
      await runTable(
        server,
        [
          {
            name: 'gone',
            path: '/v1/runs/old',
            expect: { status: 404, body: err('NOT_FOUND', 'Run not found') }
          },
          {
            name: 'its log too',
            path: '/v1/runs/old/logs/j',
            expect: { status: 404, body: err('NOT_FOUND', 'Log not found') }
          }
        ],
        token
      )
    })
  })

  describe('the builds over time: the sweep, the idle drop to the copy, the cleanup', () => {
    // The server's clock, moved by hand; tick() runs what is due instead of waiting for the ticker.
    let clock = Date.now()
    let server: CoordinationServer
    let token: string
    const sweeps = build === '2026-05-08'
    beforeAll(async () => {
      server = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false,
        latencyMs: false,
        heartbeatTimeoutMs: 1000,
        sweepPeriodMs: 1000,
        idleDropMs: 800,
        deletionDelayMs: 60_000,
        now: () => clock,
        // Only tick() runs what is due: a real-time look between two steps would race them.
        autoTick: false
      })
      token = await server.mintToken()
    })
    afterAll(() => server.close())
    const steps = (rows: Step[]): Promise<void> => runTable(server, rows, token)
    const create = (runId: string, jobs: Array<[string, string[]]>, status = 201): Step => ({
      name: `create ${runId}`,
      path: '/v1/runs',
      json: { runId, plan: plan(runId, jobs) },
      expect: { status }
    })
    const claim = (runId: string, jobId: string, runnerId: string, body: unknown): Step => ({
      name: `${runnerId} claims ${jobId}`,
      path: claimPath(runId, jobId),
      json: { runnerId },
      expect: { status: 200, body }
    })
    const succeed = (runId: string, jobId: string, runnerId: string): Step => ({
      name: `${runnerId} finishes ${jobId}`,
      path: claimPath(runId, jobId, 'update'),
      json: { runnerId, status: 'success' },
      expect: { status: 200, body: { ok: true } }
    })
    const notInitialized = { status: 404, body: err('NOT_FOUND', 'Coordinator not initialized') }
    /** Moves the clock in steps of at most `stepMs`, touching the run at each, then ticks. */
    async function passTimeBusy(runId: string, ms: number, stepMs = 300): Promise<void> {
      for (let left = ms; left > 0; left -= stepMs) {
        clock += Math.min(stepMs, left)
        await steps([
          { name: 'a read keeps the run busy', path: `/v1/runs/${runId}`, expect: { status: 200 } }
        ])
        server.tick()
      }
    }

    test('a silent runner: failed by the alarm on 2026-05-08, taken over on 2026-05-02', async () => {
      await steps([
        create('silent', [
          ['a', []],
          ['b', ['a']]
        ]),
        claim('silent', 'a', 'r1', { claimed: true })
      ])
      await passTimeBusy('silent', 2100)
      if (sweeps) {
        expect(server.jobsOf('silent')[0]).toMatchObject({
          status: 'failed',
          runnerId: 'r1',
          lastError: HEARTBEAT_TIMEOUT_ERROR,
          finishedAt: iso
        })
        await steps([
          claim('silent', 'b', 'r2', {
            claimed: false,
            currentStatus: 'pending',
            depsBlocked: true
          }),
          claim('silent', 'a', 'r2', { claimed: false, currentStatus: 'failed' }),
          {
            name: 'the lost runner, back, is told to abort',
            path: claimPath('silent', 'a', 'heartbeat'),
            json: { runnerId: 'r1' },
            expect: { status: 200, body: { ok: false, abort: true } }
          },
          {
            name: 'the run failed',
            path: '/v1/runs/silent',
            expect: {
              status: 200,
              body: { run: expect.objectContaining({ status: 'failed', jobFailed: 1 }) }
            }
          }
        ])
      } else {
        expect(server.jobsOf('silent')[0]).toMatchObject({ status: 'running', runnerId: 'r1' })
        await steps([
          claim('silent', 'b', 'r2', {
            claimed: false,
            currentStatus: 'pending',
            depsWaiting: true
          }),
          claim('silent', 'a', 'r2', { claimed: true, takeover: true })
        ])
      }
    })

    test("2026-05-08: a dependent's claim sweeps; a claim of the job itself first takes over", async () => {
      await steps([
        create('dep-sweep', [
          ['a', []],
          ['b', ['a']]
        ]),
        claim('dep-sweep', 'a', 'r1', { claimed: true }),
        create('self-first', [
          ['a', []],
          ['b', ['a']]
        ]),
        claim('self-first', 'a', 'r1', { claimed: true })
      ])
      // Past the heartbeat timeout, before any alarm has had its turn (no tick).
      clock += 1001
      await steps([
        claim(
          'dep-sweep',
          'b',
          'r2',
          sweeps
            ? { claimed: false, currentStatus: 'pending', depsBlocked: true }
            : { claimed: false, currentStatus: 'pending', depsWaiting: true }
        ),
        claim('self-first', 'a', 'r3', { claimed: true, takeover: true }),
        claim('self-first', 'b', 'r2', {
          claimed: false,
          currentStatus: 'pending',
          depsWaiting: true
        })
      ])
      expect(server.jobsOf('dep-sweep')[0]).toMatchObject(
        sweeps
          ? { status: 'failed', lastError: HEARTBEAT_TIMEOUT_ERROR }
          : { status: 'running', lastError: null }
      )
      expect(server.jobsOf('self-first')[0]).toMatchObject({ status: 'running', runnerId: 'r3' })
    })

    test('an idle run drops to the poorer copy on 2026-05-08 and stays live on 2026-05-02', async () => {
      await steps([
        create('idle', [
          ['a', []],
          ['b', []],
          ['c', ['a']]
        ]),
        claim('idle', 'a', 'r1', { claimed: true }),
        succeed('idle', 'a', 'r1'),
        // b's runner dies mid-job: nobody claims anything after this
        claim('idle', 'b', 'r2', { claimed: true })
      ])
      // The first alarm: idle for longer than idleDropMs, not silent past the heartbeat timeout.
      clock += 1000
      server.tick()
      expect(server.runPhase('idle')).toBe(sweeps ? 'copy' : 'live')
      if (!sweeps) {
        await steps([
          {
            name: 'live: dependencies and heartbeats still read',
            path: '/v1/runs/idle/jobs/b/status',
            expect: {
              status: 200,
              body: expect.objectContaining({ status: 'running', deps: [], heartbeatAt: iso })
            }
          },
          {
            name: 'live: c still depends on a',
            path: '/v1/runs/idle/jobs/c/status',
            expect: { status: 200, body: expect.objectContaining({ deps: ['a'] }) }
          },
          create(
            'idle',
            [
              ['a', []],
              ['b', []],
              ['c', ['a']]
            ],
            200
          )
        ])
        return
      }
      const copyJob = (jobId: string, status: string, runnerId: string | null): unknown => ({
        jobId,
        component: jobId,
        status,
        deps: [],
        runnerId,
        startedAt: runnerId ? iso : null,
        finishedAt: status === 'success' ? iso : null,
        lastError: null,
        heartbeatAt: null,
        logRef: null
      })
      await steps([
        {
          name: 'the copy: statuses kept, the abandoned claim pending, no deps, no heartbeats',
          path: '/v1/runs/idle/jobs',
          expect: {
            status: 200,
            body: {
              jobs: [
                copyJob('a', 'success', 'r1'),
                copyJob('b', 'pending', null),
                copyJob('c', 'pending', null)
              ]
            }
          }
        },
        {
          name: 'the copy answers job status too',
          path: '/v1/runs/idle/jobs/a/status',
          expect: { status: 200, body: expect.objectContaining({ status: 'success', deps: [] }) }
        },
        {
          name: 'the run gains finishedAt and expiresAt (24 h) and keeps its counts',
          path: '/v1/runs/idle',
          expect: {
            status: 200,
            body: {
              run: expect.objectContaining({
                status: 'running',
                finishedAt: iso,
                expiresAt: iso,
                jobTotal: 3,
                jobDone: 1,
                jobFailed: 0
              })
            }
          }
        },
        {
          name: 'no coordinator to claim from',
          path: claimPath('idle', 'c'),
          json: { runnerId: 'r3' },
          expect: notInitialized
        },
        { name: 'runnable', path: '/v1/runs/idle/runnable', expect: notInitialized },
        {
          name: 'the dead runner heartbeat',
          path: claimPath('idle', 'b', 'heartbeat'),
          json: { runnerId: 'r2' },
          expect: notInitialized
        }
      ])
      const run = (
        await send(server, { name: 'run', path: '/v1/runs/idle', expect: { status: 200 } }, token)
      ).body as { run: { finishedAt: string; expiresAt: string } }
      expect(Date.parse(run.run.expiresAt) - Date.parse(run.run.finishedAt)).toBe(24 * 3600 * 1000)
      await steps([
        create(
          'idle',
          [
            ['a', []],
            ['b', []],
            ['c', ['a']]
          ],
          201
        ),
        {
          name: 'the run started over: every job pending, dependencies back',
          path: '/v1/runs/idle/jobs',
          expect: {
            status: 200,
            body: {
              jobs: [
                expect.objectContaining({ jobId: 'a', status: 'pending', deps: [] }),
                expect.objectContaining({ jobId: 'b', status: 'pending' }),
                expect.objectContaining({ jobId: 'c', status: 'pending', deps: ['a'] })
              ]
            }
          }
        },
        claim('idle', 'c', 'r3', { claimed: false, currentStatus: 'pending', depsWaiting: true })
      ])
      expect(server.runPhase('idle')).toBe('live')
    })

    test('a busy run is not dropped; dropLiveState is the idle alarm at once', async () => {
      await steps([create('busy', [['a', []]]), claim('busy', 'a', 'r1', { claimed: true })])
      for (let i = 0; i < 4; i++) {
        clock += 500
        await steps([
          {
            name: 'heartbeat',
            path: claimPath('busy', 'a', 'heartbeat'),
            json: { runnerId: 'r1' },
            expect: { status: 200, body: { ok: true } }
          }
        ])
        server.tick()
      }
      expect(server.runPhase('busy')).toBe('live')
      expect(server.jobsOf('busy')[0].status).toBe('running')
      if (sweeps) {
        expect(server.dropLiveState('busy')).toBe(true)
        expect(server.dropLiveState('busy')).toBe(false)
        expect(server.runPhase('busy')).toBe('copy')
      } else {
        expect(() => server.dropLiveState('busy')).toThrow(/keeps runs live/)
      }
    })

    test('both builds: the cleanup deletes a run and its logs some time after it ended', async () => {
      await steps([
        create('ended', [['a', []]]),
        create('unended', [['a', []]]),
        claim('ended', 'a', 'r1', { claimed: true }),
        { name: 'log', path: '/v1/runs/ended/logs/a', raw: 'out', expect: { status: 200 } },
        succeed('ended', 'a', 'r1')
      ])
      clock += 59_999
      server.tick()
      expect(server.runPhase('ended')).toBe(sweeps ? 'copy' : 'live')
      clock += 2
      server.tick()
      expect(server.runPhase('ended')).toBe('deleted')
      await steps([
        {
          name: 'gone',
          path: '/v1/runs/ended',
          expect: { status: 404, body: err('NOT_FOUND', 'Run not found') }
        },
        {
          name: 'its log too',
          path: '/v1/runs/ended/logs/a',
          expect: { status: 404, body: err('NOT_FOUND', 'Log not found') }
        },
        {
          name: 'jobs of a deleted run',
          path: '/v1/runs/ended/jobs',
          expect: { status: 200, body: { jobs: [] } }
        },
        create('ended', [['a', []]], 201)
      ])
      // A run that never ended stays on 2026-05-02; on 2026-05-08 its drop to the copy ended it,
      // so it goes the deletion delay after the drop.
      expect(server.runPhase('unended')).toBe(sweeps ? 'copy' : 'live')
      clock += 60_000
      server.tick()
      expect(server.runPhase('unended')).toBe(sweeps ? 'deleted' : 'live')
    })

    test('the ticker runs the timers in real time, and close() stops it', async () => {
      const live = await startCoordinationServer({
        build,
        ...IMMEDIATE_CONSISTENCY,
        rateLimit: false,
        latencyMs: false,
        deletionDelayMs: 50
      })
      try {
        const liveToken = await live.mintToken()
        await runTable(
          live,
          [
            create('quick', [['a', []]]),
            claim('quick', 'a', 'r1', { claimed: true }),
            succeed('quick', 'a', 'r1')
          ],
          liveToken
        )
        const deadline = Date.now() + 30_000
        while (live.runPhase('quick') !== 'deleted' && Date.now() < deadline) await sleep(20)
        expect(live.runPhase('quick')).toBe('deleted')
      } finally {
        await live.close()
      }
    })
  })
})

describe('the rate limiter, for the tests that start a crowd on a full bucket', () => {
  test('msUntilFull: the whole seconds of refill a spent bucket still needs, from its last refill', async () => {
    const { RateLimiter } = await import('../testing/coordination/rate-limit.js')
    let clock = 1_000_000
    const limiter = new RateLimiter({ burst: 20, perSecond: 5 }, () => clock)
    expect(limiter.msUntilFull()).toBe(0)
    for (let i = 0; i < 20; i++) limiter.consume('repo')
    // 20 missing at 5 per whole second: 4 s after the bucket's last refill.
    expect(limiter.msUntilFull()).toBe(4_000)
    clock += 1_500
    expect(limiter.msUntilFull()).toBe(2_500)
    // One whole second passed: 5 refilled, counted from now (the service's model), one taken.
    limiter.consume('repo')
    expect(limiter.msUntilFull()).toBe(4_000) // 16 missing: 4 refills
    clock += 4_000
    expect(limiter.msUntilFull()).toBe(0)
    expect(new RateLimiter(false).msUntilFull()).toBe(0)
  })
})
