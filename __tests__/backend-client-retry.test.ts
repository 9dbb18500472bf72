/**
 * The backend client's retry rules that a server can only show in a sequence of
 * answers: a Retry-After other than the usual 1 s, and one token re-mint per call
 * even when a retry in between gives the 401 a second chance.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import http from 'node:http'
import type net from 'node:net'
import { randomBytes } from 'node:crypto'
import { createTokenSource } from '../src/backend/auth.js'
import { BackendClient, BackendError } from '../src/backend/client.js'
import { toBackendPlan } from '../src/backend/plan.js'
import { parsePlan } from '../src/plan/model.js'
import {
  IMMEDIATE_CONSISTENCY,
  startCoordinationServer,
  type CoordinationServer
} from '../testing/coordination-server.js'
import { sharedPlanText } from '../testing/fixtures.js'
import { silenceWorkflowCommands } from '../testing/quiet.js'

const TOKEN_ENV = ['ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN'] as const
const savedEnv = Object.fromEntries(TOKEN_ENV.map(name => [name, process.env[name]]))
let server: CoordinationServer

beforeAll(async () => {
  silenceWorkflowCommands()
  server = await startCoordinationServer({ ...IMMEDIATE_CONSISTENCY, rateLimit: false })
  Object.assign(process.env, server.tokenEnv())
})

afterAll(async () => {
  await server.close()
  for (const name of TOKEN_ENV) {
    if (savedEnv[name] === undefined) delete process.env[name]
    else process.env[name] = savedEnv[name]
  }
})

function clientOf(baseUrl: string) {
  const sleeps: number[] = []
  const client = new BackendClient({
    baseUrl,
    tokens: createTokenSource({ log: () => {} }),
    sleep: async ms => {
      sleeps.push(ms)
    },
    random: () => 0.5,
    log: () => {}
  })
  return { client, sleeps }
}

/** A backend that answers the first request with 429 and `Retry-After: <value>`, then 200. */
async function startRateLimitedOnce(retryAfter: string) {
  let answered = 0
  const backend = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      answered += 1
      if (answered === 1) {
        res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': retryAfter })
        res.end(JSON.stringify({ error: 'Rate limit exceeded', code: 'RATE_LIMITED' }))
        return
      }
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ jobs: ['a@dev.smoke'] }))
    })
  })
  await new Promise<void>(resolve => backend.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(backend.address() as net.AddressInfo).port}`,
    answered: () => answered,
    close: () =>
      new Promise<void>(resolve => {
        backend.closeAllConnections()
        backend.close(() => resolve())
      })
  }
}

describe("429 with the server's Retry-After", () => {
  it.each([
    ['7', 7_000],
    ['0', 0],
    ['30', 30_000]
  ])('Retry-After: %s waits %i ms plus at most the first jitter window', async (header, ms) => {
    const backend = await startRateLimitedOnce(header)
    try {
      const { client, sleeps } = clientOf(backend.url)
      await expect(client.runnable('run-1')).resolves.toEqual(['a@dev.smoke'])
      expect(backend.answered()).toBe(2)
      expect(sleeps).toHaveLength(1)
      // The first 429 in a row adds a jitter of less than 1 s.
      expect(sleeps[0]).toBeGreaterThanOrEqual(ms)
      expect(sleeps[0]).toBeLessThan(ms + 1_000)
      expect(client.stats.rateLimited).toBe(1)
    } finally {
      await backend.close()
    }
  })
})

describe('one token re-mint per call', () => {
  const unauthorized = {
    kind: 'status' as const,
    status: 401,
    count: 1,
    body: JSON.stringify({ error: 'Token expired', code: 'UNAUTHORIZED' }),
    contentType: 'application/json'
  }

  async function newRun(): Promise<string> {
    const runId = `remint-${randomBytes(4).toString('hex')}`
    const plan = parsePlan(sharedPlanText('single'), 'single.json')
    await clientOf(server.url).client.createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
    return runId
  }

  it('a 401 after a retried 503 within the same call is not re-minted again', async () => {
    const runId = await newRun()
    server.clearFaults()
    // 401 (re-mint and resend) -> 503 (transient: retry) -> 401 again: the call gives up.
    server.inject('runnable', unauthorized)
    server.inject('runnable', { kind: 'status', status: 503, count: 1, body: '' })
    server.inject('runnable', unauthorized)
    const { client } = clientOf(server.url)

    const failure = client.runnable(runId)
    await expect(failure).rejects.toBeInstanceOf(BackendError)
    await expect(failure).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' })
    expect(client.stats).toMatchObject({ requests: 3, tokenRefreshes: 1, retries: 1 })
    server.clearFaults()
  })

  it('the next call may re-mint once more', async () => {
    const runId = await newRun()
    server.clearFaults()
    server.inject('runnable', unauthorized)
    const { client } = clientOf(server.url)
    await expect(client.runnable(runId)).resolves.toEqual(['solo@dev.smoke'])
    server.inject('runnable', unauthorized)
    await expect(client.runnable(runId)).resolves.toEqual(['solo@dev.smoke'])
    expect(client.stats).toMatchObject({ requests: 4, tokenRefreshes: 2 })
  })
})
