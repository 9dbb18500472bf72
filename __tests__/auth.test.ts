import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  it,
  jest
} from '@jest/globals'
import { decodeJwt } from 'jose'
import http from 'node:http'
import type net from 'node:net'
import { createTokenSource } from '../src/backend/auth.js'
import { BackendClient, BackendError } from '../src/backend/client.js'
import { UserError } from '../src/common/errors.js'
import {
  startCoordinationServer,
  type CoordinationServer,
  IMMEDIATE_CONSISTENCY
} from '../testing/coordination-server.js'

const ENV_KEYS = ['ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN', 'ORUN_TOKEN']
const savedEnv = Object.fromEntries(ENV_KEYS.map(key => [key, process.env[key]]))

let server: CoordinationServer
/** Every line @actions/core wrote to stdout (workflow commands such as ::add-mask::). */
let stdout: string[]

beforeAll(async () => {
  server = await startCoordinationServer({ ...IMMEDIATE_CONSISTENCY, rateLimit: false })
})

beforeEach(() => {
  for (const key of ENV_KEYS) delete process.env[key]
  stdout = []
  jest.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array) => {
    stdout.push(String(chunk))
    return true
  }) as typeof process.stdout.write)
})

afterEach(() => {
  jest.restoreAllMocks()
  for (const key of ENV_KEYS) {
    if (savedEnv[key] === undefined) delete process.env[key]
    else process.env[key] = savedEnv[key]
  }
})

afterAll(async () => {
  await server.close()
})

function useOidc(target: CoordinationServer = server): void {
  Object.assign(process.env, target.tokenEnv())
}

const plan = {
  checksum: 'authtest',
  version: 'sourceplane.io/v1',
  createdAt: '2026-05-02T10:00:00Z',
  jobs: [{ jobId: 'api@dev.smoke', component: 'api', deps: [], steps: [] }]
}

describe('OIDC tokens', () => {
  it('mints through the runner token endpoint with audience orun, once for many calls', async () => {
    useOidc()
    const before = server.tokensMinted
    const tokens = createTokenSource({ log: () => {} })
    expect(tokens.kind).toBe('oidc')
    const first = await tokens.token()
    expect(decodeJwt(first)).toMatchObject({ aud: 'orun', repository: 'acme/monorepo' })
    for (let i = 0; i < 5; i++) expect(await tokens.token()).toBe(first)
    expect(tokens.mints).toBe(1)
    expect(server.tokensMinted - before).toBe(1)
    expect(tokens.issued).toEqual([first])
    // masked in the log, and never printed otherwise
    expect(stdout).toContain(`::add-mask::${first}\n`)
    expect(stdout.filter(line => line.includes(first) && !line.startsWith('::add-mask::'))).toEqual(
      []
    )

    // the token works against the backend for a mutable (OIDC-only) route
    const client = new BackendClient({ baseUrl: server.url, tokens })
    await expect(client.createRun({ plan, runId: `auth-${Date.now()}` })).resolves.toMatchObject({
      created: true
    })
    expect(tokens.mints).toBe(1)
  })

  it('uses the audience it is given', async () => {
    useOidc()
    const tokens = createTokenSource({ audience: 'https://orun.example', log: () => {} })
    expect(decodeJwt(await tokens.token()).aud).toBe('https://orun.example')
  })

  it('shares one mint between concurrent callers', async () => {
    useOidc()
    const before = server.tokensMinted
    const tokens = createTokenSource({ log: () => {} })
    const all = await Promise.all(Array.from({ length: 10 }, () => tokens.token()))
    expect(new Set(all).size).toBe(1)
    expect(tokens.mints).toBe(1)
    expect(server.tokensMinted - before).toBe(1)
  })

  it('mints again only when fewer than 60 s remain', async () => {
    useOidc()
    let now = Date.now()
    const messages: string[] = []
    const tokens = createTokenSource({ now: () => now, log: message => messages.push(message) })
    const first = await tokens.token()
    expect(decodeJwt(first).exp! - decodeJwt(first).iat!).toBe(300)
    now += 230_000 // 70 s left (69 s counting the truncated iat)
    expect(await tokens.token()).toBe(first)
    expect(tokens.mints).toBe(1)
    now += 15_000 // 55 s left
    await tokens.token()
    expect(tokens.mints).toBe(2)
    expect(tokens.issued).toHaveLength(2)
    expect(messages.join('\n')).toContain("Minted a GitHub OIDC token for audience 'orun'")
    expect(messages.join('\n')).not.toContain(first)
  })

  it('mints again after invalidate()', async () => {
    useOidc()
    const tokens = createTokenSource({ log: () => {} })
    await tokens.token()
    tokens.invalidate()
    await tokens.token()
    expect(tokens.mints).toBe(2)
  })

  it('keeps short-lived tokens fresh across a long wait without a single 401', async () => {
    // One clock for the server and the token source, moved on by hand: 10 s of calls every
    // 400 ms, however slow the machine is.
    let clock = Date.now()
    const shortLived = await startCoordinationServer({
      ...IMMEDIATE_CONSISTENCY,
      rateLimit: false,
      tokenLifetimeSeconds: 2,
      now: () => clock
    })
    try {
      useOidc(shortLived)
      const tokens = createTokenSource({ now: () => clock, log: () => {} })
      const client = new BackendClient({ baseUrl: shortLived.url, tokens })
      const runId = `short-${Date.now()}`
      await client.createRun({ plan, runId })
      for (let call = 1; call <= 25; call++) {
        expect(await client.runnable(runId)).toEqual(['api@dev.smoke'])
        clock += 400
      }
      // A 2 s token counts as 1 s (iat is truncated) and is renewed at half of that: one mint
      // for every second call, never one per request.
      expect(tokens.mints).toBe(13)
      expect(client.stats.requests).toBe(26)
      expect(client.stats.tokenRefreshes).toBe(0)
      expect(shortLived.requests.filter(request => request.status === 401)).toEqual([])
    } finally {
      await shortLived.close()
    }
  })

  it('re-mints once when the backend refuses a token it still believes valid', async () => {
    let serverClock = Date.now()
    const shortLived = await startCoordinationServer({
      ...IMMEDIATE_CONSISTENCY,
      rateLimit: false,
      tokenLifetimeSeconds: 2,
      now: () => serverClock
    })
    try {
      useOidc(shortLived)
      // A frozen clock: the source keeps its token while the server sees it expire (clock skew).
      const frozen = serverClock
      const logs: string[] = []
      const tokens = createTokenSource({ now: () => frozen, log: () => {} })
      const client = new BackendClient({
        baseUrl: shortLived.url,
        tokens,
        log: message => logs.push(message)
      })
      const runId = `expired-${Date.now()}`
      await client.createRun({ plan, runId })
      serverClock += 2100
      await expect(client.runnable(runId)).resolves.toEqual(['api@dev.smoke'])
      expect(tokens.mints).toBe(2)
      expect(client.stats).toMatchObject({ tokenRefreshes: 1, requests: 3 })
      expect(shortLived.requests.map(request => request.status)).toContain(401)
      expect(logs.join('\n')).toContain('Token expired')
      for (const token of tokens.issued) expect(logs.join('\n')).not.toContain(token)
    } finally {
      await shortLived.close()
    }
  })

  it('fails on a second 401 after re-minting', async () => {
    useOidc()
    // The server mints for any audience it is asked, but the backend accepts only 'orun'.
    const tokens = createTokenSource({ audience: 'someone-else', log: () => {} })
    const client = new BackendClient({ baseUrl: server.url, tokens })
    const error = await client.runnable('any').catch((failure: unknown) => failure)
    expect(error).toBeInstanceOf(BackendError)
    expect(error).toMatchObject({ status: 401, code: 'UNAUTHORIZED', message: 'Invalid audience' })
    expect(tokens.mints).toBe(2)
    expect(client.stats).toMatchObject({ requests: 2, tokenRefreshes: 1 })
  })

  it('explains a failed mint as a UserError with the permissions hint', async () => {
    const closed = http.createServer()
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as net.AddressInfo).port
    await new Promise<void>(resolve => closed.close(() => resolve()))
    process.env.ACTIONS_ID_TOKEN_REQUEST_URL = `http://127.0.0.1:${port}/token?api-version=2.0`
    process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN = 'request-token'
    const tokens = createTokenSource({ log: () => {} })
    const error = await tokens.token().catch((failure: unknown) => failure)
    expect(error).toBeInstanceOf(UserError)
    expect((error as Error).message).toContain('ECONNREFUSED')
    expect((error as Error).message).toContain('id-token: write')
    expect(tokens.mints).toBe(0)

    // the runner's request token refused (401): same explanation, with the reason
    useOidc()
    process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN = 'wrong'
    const refused = await createTokenSource({ log: () => {} })
      .token()
      .catch((failure: unknown) => failure)
    expect(refused).toBeInstanceOf(UserError)
    expect((refused as Error).message).toContain('401')
    expect((refused as Error).message).toContain('permissions:\n      id-token: write')
  })

  it('prefers OIDC over a static token when both are available', () => {
    useOidc()
    expect(createTokenSource({ staticToken: 'static-secret' }).kind).toBe('oidc')
  })
})

describe('static tokens', () => {
  it('falls back to the token input with a notice, and masks it', async () => {
    const tokens = createTokenSource({ staticToken: 'input-secret-123' })
    expect(tokens.kind).toBe('static')
    await expect(tokens.token()).resolves.toBe('input-secret-123')
    tokens.invalidate()
    await expect(tokens.token()).resolves.toBe('input-secret-123')
    expect(tokens.mints).toBe(0)
    expect(tokens.issued).toEqual(['input-secret-123'])
    expect(stdout).toContain('::add-mask::input-secret-123\n')
    const notice = stdout.find(line => line.startsWith('::notice::'))
    expect(notice).toContain('read routes')
    expect(notice).not.toContain('input-secret-123')
  })

  it('falls back to ORUN_TOKEN', async () => {
    process.env.ORUN_TOKEN = 'env-secret-456'
    const tokens = createTokenSource({})
    expect(tokens.kind).toBe('static')
    await expect(tokens.token()).resolves.toBe('env-secret-456')
  })

  it('is sent as is and accepted on read routes by a backend that knows it', async () => {
    const withSessions = await startCoordinationServer({
      ...IMMEDIATE_CONSISTENCY,
      rateLimit: false,
      sessionTokens: ['cli-session-token']
    })
    try {
      useOidc(withSessions)
      const creator = new BackendClient({
        baseUrl: withSessions.url,
        tokens: createTokenSource({ log: () => {} })
      })
      const runId = `static-${Date.now()}`
      await creator.createRun({ plan, runId })
      for (const key of ENV_KEYS) delete process.env[key]

      const reader = new BackendClient({
        baseUrl: withSessions.url,
        tokens: createTokenSource({ staticToken: 'cli-session-token' })
      })
      await expect(reader.listJobs(runId)).resolves.toHaveLength(1)
      const error = await reader
        .claim(runId, 'api@dev.smoke', 'r1')
        .catch((failure: unknown) => failure)
      expect(error).toMatchObject({ status: 403, code: 'FORBIDDEN' })
      expect(reader.stats.requests).toBe(2)
    } finally {
      await withSessions.close()
    }
  })
})

describe('no token at all', () => {
  it('throws a UserError that shows the permissions YAML', () => {
    let error: unknown
    try {
      createTokenSource({})
    } catch (failure) {
      error = failure
    }
    expect(error).toBeInstanceOf(UserError)
    const message = (error as Error).message
    expect(message).toContain('id-token: write')
    expect(message).toContain('permissions:')
    expect(message).toContain('`token`')
  })
})
