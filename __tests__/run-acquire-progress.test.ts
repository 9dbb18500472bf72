/**
 * Two rules of the claim loop that only a sequence of moves by other runners shows,
 * against the in-process coordination server with a fake clock (each sleep returns at
 * once and moves the clock on):
 * - the dependency timeout counts time without progress: each upstream job that
 *   finishes starts it again;
 * - a claim answered with depsBlocked ends the wait at once, without another sleep.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { createTokenSource } from '../src/backend/auth.js'
import { BackendClient } from '../src/backend/client.js'
import { toBackendPlan } from '../src/backend/plan.js'
import { UserError } from '../src/common/errors.js'
import { parsePlan, type Plan } from '../src/plan/model.js'
import { acquireJob, type AcquireContext } from '../src/run/acquire.js'
import {
  IMMEDIATE_CONSISTENCY,
  startCoordinationServer,
  type CoordinationServer
} from '../testing/coordination-server.js'
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

const MINUTE = 60_000

/** a -> b -> c -> d, all in dev. */
const chain: Plan = parsePlan(
  JSON.stringify({
    metadata: {
      checksum: 'sha256-c4a1e0000000000000000000000000000000000000000000000000000000beef'
    },
    jobs: [
      ['a@dev', []],
      ['b@dev', ['a@dev']],
      ['c@dev', ['b@dev']],
      ['d@dev', ['c@dev']]
    ].map(([id, dependsOn]) => ({
      id,
      component: String(id).split('@')[0],
      environment: 'dev',
      dependsOn,
      steps: [{ id: 'smoke', run: 'true' }]
    }))
  }),
  'plan.json'
)

const newClient = () =>
  new BackendClient({ baseUrl: server.url, tokens: createTokenSource({ log: () => {} }) })

async function newRun(): Promise<string> {
  const runId = `progress-${randomBytes(4).toString('hex')}`
  await newClient().createRun({ plan: toBackendPlan(chain.file, chain.id), runId })
  return runId
}

/** Another runner that runs a job from claim to result. */
function otherRunner(runId: string) {
  const client = newClient()
  const runnerId = `other-${randomBytes(3).toString('hex')}`
  return {
    start: async (jobId: string) =>
      expect((await client.claim(runId, jobId, runnerId)).claimed).toBe(true),
    finish: (jobId: string, status: 'success' | 'failed', error?: string) =>
      client.update(runId, jobId, runnerId, status, error)
  }
}

/**
 * An acquire context on a fake clock. `onSleep` runs after each sleep, with the
 * minutes passed since the start, to play the other runners' moves.
 */
function harness(
  runId: string,
  dependencyTimeoutMs: number,
  onSleep: (minutes: number) => Promise<void>
) {
  const client = newClient()
  const start = Date.now()
  let clock = start
  const sleeps: number[] = []
  const ctx: AcquireContext = {
    client,
    plan: chain,
    runId,
    runnerId: `me-${randomBytes(3).toString('hex')}`,
    onDuplicate: 'wait',
    dependencyTimeoutMs,
    staleHeartbeatMs: 90_000,
    ensureRun: async () => {},
    sleep: async ms => {
      sleeps.push(ms)
      clock += ms
      await onSleep((clock - start) / MINUTE)
    },
    now: () => clock,
    random: () => 0.5,
    log: () => {}
  }
  return { ctx, client, sleeps, elapsedMinutes: () => (clock - start) / MINUTE }
}

describe('the dependency timeout restarts when an upstream job finishes', () => {
  it('waits 3 × 8 minutes of steady progress with a 10-minute timeout, then claims', async () => {
    const runId = await newRun()
    const other = otherRunner(runId)
    await other.start('a@dev')
    // Each upstream job takes 8 minutes: never 10 minutes without progress, 24 in all.
    const schedule: Array<[number, string, string | undefined]> = [
      [8, 'a@dev', 'b@dev'],
      [16, 'b@dev', 'c@dev'],
      [24, 'c@dev', undefined]
    ]
    const h = harness(runId, 10 * MINUTE, async minutes => {
      while (schedule.length && minutes >= schedule[0][0]) {
        const [, done, next] = schedule.shift()!
        await other.finish(done, 'success')
        if (next) await other.start(next)
      }
    })

    await expect(acquireJob(h.ctx, 'd@dev')).resolves.toEqual({ kind: 'claimed', takeover: false })
    expect(h.elapsedMinutes()).toBeGreaterThanOrEqual(24)
    expect(server.jobsOf(runId).find(j => j.jobId === 'd@dev')).toMatchObject({
      status: 'running',
      runnerId: h.ctx.runnerId
    })
  })

  it('still gives up after 10 minutes once progress stops', async () => {
    const runId = await newRun()
    const other = otherRunner(runId)
    await other.start('a@dev')
    let finishedA = false
    const h = harness(runId, 10 * MINUTE, async minutes => {
      if (!finishedA && minutes >= 8) {
        finishedA = true
        await other.finish('a@dev', 'success')
        await other.start('b@dev') // b then runs forever
      }
    })

    await expect(acquireJob(h.ctx, 'c@dev')).rejects.toThrow(UserError)
    // The clock restarted when a@dev finished (minute 8 or a little later): 10 more minutes.
    expect(h.elapsedMinutes()).toBeGreaterThanOrEqual(18)
    expect(h.elapsedMinutes()).toBeLessThan(20)
  })
})

describe('a claim answered with depsBlocked', () => {
  it('ends the wait at once: one look at the run, no further sleep or claim', async () => {
    const runId = await newRun()
    const other = otherRunner(runId)
    await other.start('a@dev')
    let failedAt = -1
    let failedWall = 0
    const h = harness(runId, 30 * MINUTE, async () => {
      if (failedAt === -1 && h.client.stats.byRoute['POST /v1/runs/{runId}/jobs/{jobId}/claim']) {
        // b@dev has claimed once (depsWaiting): a@dev fails before its next claim.
        await other.finish('a@dev', 'failed', 'exit 2')
        failedAt = h.sleeps.length
        failedWall = Date.now()
      }
    })

    const result = await acquireJob(h.ctx, 'b@dev')

    expect(result).toEqual({
      kind: 'blocked',
      upstream: [expect.objectContaining({ jobId: 'a@dev', status: 'failed', lastError: 'exit 2' })]
    })
    expect(failedAt).toBeGreaterThan(0)
    // No sleep after the one during which a@dev failed.
    expect(h.sleeps).toHaveLength(failedAt)
    // Its claims all came before a@dev failed, or was the one answered depsBlocked.
    const myClaims = server.requests.filter(
      r => r.route === 'claim' && r.runnerId === h.ctx.runnerId
    )
    expect(myClaims.at(-1)!.at).toBeGreaterThanOrEqual(failedWall)
    expect(
      server.requests.filter(r => r.runnerId === h.ctx.runnerId && r.at >= failedWall)
    ).toHaveLength(1)
  })
})
