/**
 * The rate limit is learned, not assumed: a runner paces as for 5/s until a 429
 * states the bucket's size; on the 2026-05-08 build (burst 300, 30/s) nothing may
 * then pace as if the limit were 5/s, and a small bucket keeps the tight pace. The claim loop runs in-process against the coordination
 * server with one fake clock shared by the server, the client and the loop:
 * sleeps return at once and move the clock, so delays are counted, not timed.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { createTokenSource } from '../src/backend/auth.js'
import { BackendClient } from '../src/backend/client.js'
import type { LimitHint } from '../src/common/limit-hint.js'
import { toBackendPlan } from '../src/backend/plan.js'
import { parsePlan, type Plan } from '../src/plan/model.js'
import { acquireJob, firstLookDelayMs } from '../src/run/acquire.js'
import { AMPLE_PER_SECOND, LearnedLimit, TIGHT_PER_SECOND } from '../src/run/pace.js'
import { IDLE_MIN_MS, idleDelayMs, type PoolView } from '../src/run/pool.js'
import { NEAR_SHARE_MS } from '../src/run/schedule.js'
import { IMMEDIATE_CONSISTENCY, startCoordinationServer } from '../testing/coordination-server.js'
import { silenceWorkflowCommands } from '../testing/quiet.js'
import { Scratch } from '../testing/scratch.js'

const TOKEN_ENV = ['ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN'] as const
const scratch = new Scratch(TOKEN_ENV)

beforeAll(() => silenceWorkflowCommands())
afterAll(() => {
  scratch.cleanUp()
})

/** A root and 16 dependents of it: a crowd of 16 runners one step from runnable. */
const CROWD = 16
const fanOut: Plan = parsePlan(
  JSON.stringify({
    metadata: { checksum: 'sha256-1111aaaa2222bbbb' },
    jobs: [
      { id: 'root@dev', component: 'root', environment: 'dev', steps: [{ run: 'true' }] },
      ...Array.from({ length: CROWD }, (_, i) => ({
        id: `dep${i}@dev`,
        component: `dep${i}`,
        environment: 'dev',
        dependsOn: ['root@dev'],
        steps: [{ run: 'true' }]
      }))
    ]
  }),
  'plan.json'
)

const ROOT_SECONDS = 10

/**
 * One dependent's runner waits while another runner holds the root for 10 s (of the shared
 * fake clock) and any `others` for their own times. `drainFirst` spends the repository's whole
 * burst just before the runner's first look, as a crowd starting at once would. Returns every
 * sleep of the runner's claim loop, its 429s, and how long after the root succeeded the
 * dependent was claimed.
 */
async function waitOnRoot(
  rateLimit: { burst: number; perSecond: number },
  drainFirst: boolean,
  hint?: LimitHint,
  scenario: {
    plan: Plan
    dependent: string
    others: Array<{ id: string; endsAfterMs: number }>
  } = {
    plan: fanOut,
    dependent: 'dep0@dev',
    others: []
  }
): Promise<{ sleeps: number[]; refusals: number; claimDelayMs: number }> {
  const { plan } = scenario
  let clock = Date.now()
  const advance = async (ms: number) => {
    clock += ms
  }
  const server = await startCoordinationServer({
    ...IMMEDIATE_CONSISTENCY,
    rateLimit,
    now: () => clock
  })
  Object.assign(process.env, server.tokenEnv())
  try {
    const clientOf = () =>
      new BackendClient({
        baseUrl: server.url,
        tokens: createTokenSource({ log: () => {} }),
        sleep: advance,
        now: () => clock,
        random: () => 0.5
      })
    const runId = `run-${randomBytes(4).toString('hex')}`
    const other = clientOf()
    await other.createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
    const rootEndsAt = clock + ROOT_SECONDS * 1000
    // Held by another runner, each until its end; the root last.
    const held = [
      ...scenario.others.map(o => ({ id: o.id, endsAt: clock + o.endsAfterMs })),
      { id: 'root@dev', endsAt: rootEndsAt }
    ]
    for (const job of held) expect((await other.claim(runId, job.id, 'other')).claimed).toBe(true)
    const client = clientOf()
    const sleeps: number[] = []
    const result = await acquireJob(
      {
        client,
        plan,
        runId,
        runnerId: 'me',
        onDuplicate: 'wait',
        dependencyTimeoutMs: 30 * 60_000,
        staleHeartbeatMs: 90_000,
        ensureRun: async () => {
          throw new Error('the run exists')
        },
        sleep: async ms => {
          sleeps.push(ms)
          clock += ms
          // A job that ended during this sleep, at its end: its result is there on waking.
          for (const job of held.filter(j => clock >= j.endsAt)) {
            held.splice(held.indexOf(job), 1)
            await other.update(runId, job.id, 'other', 'success')
          }
          if (drainFirst && sleeps.length === 1) {
            // The rest of a crowd started together spends the burst before this runner looks.
            const drainer = new BackendClient({
              baseUrl: server.url,
              tokens: createTokenSource({ log: () => {} }),
              maxRateLimitedAttempts: 1
            })
            for (let sent = 0; sent <= rateLimit.burst; sent++) {
              const refused = await drainer.listJobs(runId).then(
                () => false,
                () => true
              )
              if (refused) break
            }
          }
        },
        now: () => clock,
        random: () => 0.5,
        log: () => {},
        limit: new LearnedLimit(
          () => client.stats.rateLimited,
          () => client.stats.rateLimitBurst,
          hint
        )
      },
      scenario.dependent
    )
    expect(result).toEqual({ kind: 'claimed', takeover: false })
    return {
      sleeps,
      refusals: client.stats.rateLimited,
      claimDelayMs: clock - rootEndsAt
    }
  } finally {
    await server.close()
  }
}

describe('the rate limit a runner assumes', () => {
  it('starts tight, and turns ample only once a 429 states a large bucket (the 30/s build)', () => {
    let refusals = 0
    // What the client read before this runner started counts for nothing.
    let burst = 20
    const limit = new LearnedLimit(
      () => refusals,
      () => burst
    )
    expect(limit.perSecond()).toBe(TIGHT_PER_SECOND)
    expect(limit.scale()).toBe(1)
    refusals++
    burst = 300
    expect(limit.perSecond()).toBe(AMPLE_PER_SECOND)
    expect(limit.scale()).toBeCloseTo(TIGHT_PER_SECOND / AMPLE_PER_SECOND)
  })

  it('stays tight when a 429 states a small bucket (the 5/s build) or none', () => {
    let refusals = 0
    let burst: number | undefined
    const limit = new LearnedLimit(
      () => refusals,
      () => burst
    )
    refusals++
    burst = 20
    expect(limit.perSecond()).toBe(TIGHT_PER_SECOND)
    refusals++
    burst = undefined
    expect(limit.perSecond()).toBe(TIGHT_PER_SECOND)
    // A later 429 that states a large bucket is what counts.
    refusals++
    burst = 300
    expect(limit.perSecond()).toBe(AMPLE_PER_SECOND)
  })

  it("starts from the plan step's probe, until its own 429 states a bucket", () => {
    let refusals = 0
    let burst: number | undefined = 300
    // 60 reads answered without a 429: more than the 5/s build's bucket.
    const ample = new LearnedLimit(
      () => refusals,
      () => burst,
      { burst: 60, stated: false }
    )
    expect(ample.perSecond()).toBe(AMPLE_PER_SECOND)
    expect(new LearnedLimit(() => 0, undefined, { burst: 20, stated: true }).perSecond()).toBe(
      TIGHT_PER_SECOND
    )
    // The runner's own 429 says 20: the deployment is the tight build after all.
    refusals++
    burst = 20
    expect(ample.perSecond()).toBe(TIGHT_PER_SECOND)
  })

  it('counts only 429s after it was made: a runner starts from what its client sees now', () => {
    const limit = new LearnedLimit(
      () => 3,
      () => 300
    )
    expect(limit.perSecond()).toBe(TIGHT_PER_SECOND)
  })
})

describe('a crowd waiting on the 300/30 build', () => {
  it('once a 429 stated the bucket of 300, polls at its share of 30/s, not of 5/s, and claims within a second or so of the dependency', async () => {
    const { sleeps, refusals, claimDelayMs } = await waitOnRoot({ burst: 300, perSecond: 30 }, true)
    expect(refusals).toBeGreaterThan(0)
    // Paced for 5/s, a crowd of 16 shares about 3 requests a second: one poll per 16 × 270 ms
    // (more after jitter) for each runner, and the dependency's result waits that long.
    const tightShare = CROWD * NEAR_SHARE_MS
    expect(Math.max(...sleeps)).toBeLessThan(tightShare / 3)
    expect(claimDelayMs).toBeLessThanOrEqual(1_500)
    // Still a share: the crowd's polls stay within the 30/s refill (16 runners, one poll each
    // per this long at least, is under 20 requests a second).
    const nearSleeps = sleeps.slice(1)
    expect(Math.min(...nearSleeps)).toBeGreaterThanOrEqual((CROWD * 1000) / 20)
  })

  it("with the plan step's probe, polls at its share of 30/s before any 429", async () => {
    const { sleeps, refusals, claimDelayMs } = await waitOnRoot(
      { burst: 300, perSecond: 30 },
      false,
      { burst: 60, stated: false }
    )
    expect(refusals).toBe(0)
    const tightShare = CROWD * NEAR_SHARE_MS
    expect(Math.max(...sleeps.slice(1))).toBeLessThan(tightShare / 3)
    expect(claimDelayMs).toBeLessThanOrEqual(1_500)
  })

  it('without a probe and without a 429, keeps the 5/s spacing (what the probe is for)', async () => {
    const { sleeps, refusals } = await waitOnRoot({ burst: 300, perSecond: 30 }, false)
    expect(refusals).toBe(0)
    expect(Math.min(...sleeps.slice(1))).toBeGreaterThanOrEqual(CROWD * NEAR_SHARE_MS)
  })

  it('paces as for 5/s once the answers say 429, on the 20/5 build', async () => {
    const { sleeps, refusals } = await waitOnRoot({ burst: 20, perSecond: 5 }, true)
    expect(refusals).toBeGreaterThan(0)
    // The 429 said burst 20: every near poll after it is spaced as for 5/s.
    const nearSleeps = sleeps.slice(1)
    expect(Math.min(...nearSleeps)).toBeGreaterThanOrEqual(CROWD * NEAR_SHARE_MS)
  })
})

describe('pool and first-look spacing scale with the learned limit', () => {
  const view: PoolView = {
    runnable: [],
    pendingLive: 20,
    width: 10,
    running: [],
    busyOthers: 6,
    stale: [],
    finished: 0
  }

  it('an idle worker of a 7-worker pool waits its share of 30/s, not of 5/s', () => {
    const tight = idleDelayMs(view, 7, 0, [], Date.now(), () => 0, 1)
    const ample = idleDelayMs(view, 7, 0, [], Date.now(), () => 0, TIGHT_PER_SECOND / 30)
    expect(tight).toBeGreaterThanOrEqual(7 * 400)
    expect(ample).toBeLessThan(IDLE_MIN_MS)
    expect(ample).toBeGreaterThan(0)
  })

  it('a dependent looks first sooner where the limit is ample', () => {
    expect(firstLookDelayMs(2, 40, TIGHT_PER_SECOND / 30)).toBeLessThan(firstLookDelayMs(2, 40) / 5)
  })
})

describe('an estimate that comes late', () => {
  it('on the 30/s pace, a dependent claims soon after its dependency ends, however many polls came before the estimate', async () => {
    // A root held 10 s, and a side root that ends after 5 s: until the side root ends,
    // nothing has finished, so the dependent polls at the crowd's share with no estimate (many
    // polls on the ample pace); then the estimate comes, already passed.
    const plan = parsePlan(
      JSON.stringify({
        metadata: { checksum: 'sha256-3333cccc4444dddd' },
        jobs: [
          { id: 'root@dev', component: 'root', environment: 'dev', steps: [{ run: 'true' }] },
          { id: 'side@dev', component: 'side', environment: 'dev', steps: [{ run: 'true' }] },
          {
            id: 'dep@dev',
            component: 'dep',
            environment: 'dev',
            dependsOn: ['root@dev'],
            steps: [{ run: 'true' }]
          }
        ]
      }),
      'plan.json'
    )
    const { sleeps, claimDelayMs } = await waitOnRoot(
      { burst: 300, perSecond: 30 },
      false,
      { burst: 60, stated: false },
      { plan, dependent: 'dep@dev', others: [{ id: 'side@dev', endsAfterMs: 5_000 }] }
    )
    // Polled many times before the estimate (counting those as overrun slept 20-30 s here).
    expect(sleeps.filter(ms => ms < 2_000).length).toBeGreaterThan(8)
    expect(claimDelayMs).toBeLessThanOrEqual(2_000)
  })
})
