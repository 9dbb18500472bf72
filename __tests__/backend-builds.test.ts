/**
 * What the action does about the 2026-05-08 build of orun-backend, in-process against the local
 * server on that build: a run dropped to its poorer copy is never created again (that would start
 * it over) and is never waited on; a runner lost mid-job is named as such, not as a failure of the
 * job's steps, in the run action's result and in the status summary and its annotations.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { createTokenSource } from '../src/backend/auth.js'
import { BackendClient } from '../src/backend/client.js'
import {
  RunDroppedError,
  checkNotDropped,
  readsLikeDroppedCopy
} from '../src/backend/dropped-run.js'
import { toBackendPlan } from '../src/backend/plan.js'
import { joinRun } from '../src/backend/session.js'
import {
  RERUN_AFTER_RUNNER_LOST,
  isRunnerLost,
  runnerLostText,
  upstreamRunnerLostText
} from '../src/common/runner-lost.js'
import { parsePlan, type Plan } from '../src/plan/model.js'
import { acquireJob, type AcquireContext } from '../src/run/acquire.js'
import { classifyRun } from '../src/status/outcome.js'
import { problemLine, renderStatusSummary } from '../src/status/summary.js'
import {
  HEARTBEAT_TIMEOUT_ERROR,
  IMMEDIATE_CONSISTENCY,
  startCoordinationServer,
  type CoordinationServer
} from '../testing/coordination-server.js'
import { silenceWorkflowCommands } from '../testing/quiet.js'
import { Scratch } from '../testing/scratch.js'

const TOKEN_ENV = ['ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN'] as const
const scratch = new Scratch(TOKEN_ENV)

let server: CoordinationServer
beforeAll(async () => {
  silenceWorkflowCommands()
  server = await startCoordinationServer({
    build: '2026-05-08',
    ...IMMEDIATE_CONSISTENCY,
    rateLimit: false,
    latencyMs: false
  })
  Object.assign(process.env, server.tokenEnv())
})
afterAll(async () => {
  await server.close()
  scratch.cleanUp()
})

function planOf(jobs: Record<string, string[]>): Plan {
  return parsePlan(
    JSON.stringify({
      metadata: { checksum: 'sha256-b0b0b0b0b0b0b0b0' },
      jobs: Object.entries(jobs).map(([id, dependsOn]) => ({
        id,
        component: id.split('@')[0],
        environment: 'dev',
        dependsOn,
        steps: [{ id: 'smoke', run: 'true' }]
      }))
    }),
    'plan.json'
  )
}

/** a -> b, and a lone root x. */
const plan = planOf({ 'a@dev': [], 'b@dev': ['a@dev'], 'x@dev': [] })
const freshRunId = () => `run-${randomBytes(4).toString('hex')}`
const newClient = () =>
  new BackendClient({ baseUrl: server.url, tokens: createTokenSource({ log: () => {} }) })

/** An acquire context whose ensureRun is the run action's: a read first, then create or join. */
function context(runId: string): AcquireContext & { client: BackendClient } {
  const client = newClient()
  let clock = Date.now()
  return {
    client,
    plan,
    runId,
    runnerId: `late-${randomBytes(3).toString('hex')}`,
    onDuplicate: 'wait',
    dependencyTimeoutMs: 30 * 60_000,
    staleHeartbeatMs: 90_000,
    ensureRun: async () => {
      await checkNotDropped(client, runId)
      await joinRun(client, plan, runId)
    },
    sleep: async ms => {
      clock += ms
    },
    now: () => clock,
    random: () => 0.5,
    log: () => {}
  }
}

/** A run in which a succeeded and b's runner vanished mid-job, then dropped to the copy. */
async function droppedRun(runPlan: Plan = plan): Promise<string> {
  const runId = freshRunId()
  const client = newClient()
  await client.createRun({ plan: toBackendPlan(runPlan.file, runPlan.id), runId })
  await client.claim(runId, 'a@dev', 'r1')
  await client.update(runId, 'a@dev', 'r1', 'success')
  await client.claim(runId, 'b@dev', 'r2')
  expect(server.dropLiveState(runId)).toBe(true)
  return runId
}

describe('a run the 2026-05-08 build dropped to its copy', () => {
  it('a late runner of a pending job does not create it again, and says what happened', async () => {
    const runId = await droppedRun()
    const ctx = context(runId)
    const outcome = acquireJob(ctx, 'x@dev')
    await expect(outcome).rejects.toBeInstanceOf(RunDroppedError)
    await expect(outcome).rejects.toThrow(
      /no longer live.*1 of 3 job\(s\) succeeded.*start the whole run over.*Re-run failed jobs/
    )
    // Not created again (a create would have made it live, every job pending): the success is
    // still there for a re-run to carry.
    expect(server.runPhase(runId)).toBe('copy')
    expect(server.jobsOf(runId).find(j => j.jobId === 'a@dev')?.status).toBe('success')
  })

  it('a late runner of a job that succeeded there succeeds without running it', async () => {
    const runId = await droppedRun()
    const ctx = context(runId)
    // a@dev is a root: the runner claims first, meets "unknown", reads the run and sees the copy.
    await expect(acquireJob(ctx, 'a@dev')).resolves.toMatchObject({
      kind: 'finished',
      status: 'success',
      runnerId: 'r1'
    })
    expect(server.runPhase(runId)).toBe('copy')
  })

  it('a dependent waiting on an abandoned claim (pending in the copy) stops at once', async () => {
    const planWithWait = planOf({ 'a@dev': [], 'b@dev': ['a@dev'], 'c@dev': ['b@dev'] })
    const runId = await droppedRun(planWithWait)
    const ctx = { ...context(runId), plan: planWithWait }
    await expect(acquireJob(ctx, 'c@dev')).rejects.toBeInstanceOf(RunDroppedError)
    expect(ctx.client.stats.requests).toBeLessThanOrEqual(2)
    expect(server.runPhase(runId)).toBe('copy')
  })

  it('reads the copy for what it is, and a live run for what it is', async () => {
    const runId = await droppedRun()
    const client = newClient()
    expect(readsLikeDroppedCopy(plan, await client.listJobs(runId))).toBe(true)
    const live = freshRunId()
    await client.createRun({ plan: toBackendPlan(plan.file, plan.id), runId: live })
    expect(readsLikeDroppedCopy(plan, await client.listJobs(live))).toBe(false)
    // A plan without dependencies tells nothing by its dependencies: never called a copy.
    expect(readsLikeDroppedCopy(planOf({ 'x@dev': [] }), await client.listJobs(runId))).toBe(false)
    await expect(checkNotDropped(client, live)).resolves.toBeUndefined()
    await expect(checkNotDropped(client, freshRunId())).resolves.toBeUndefined()
    await expect(checkNotDropped(client, runId)).rejects.toBeInstanceOf(RunDroppedError)
  })
})

describe('a runner lost mid-job on the 2026-05-08 build', () => {
  it("its dependents are blocked by a lost runner, named with the runner's id", async () => {
    const runId = freshRunId()
    const client = newClient()
    await client.createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
    await client.claim(runId, 'a@dev', 'gone-runner-1-99-abcdef')
    server.setOptions({ heartbeatTimeoutMs: 0 })
    try {
      const acquired = await acquireJob(context(runId), 'b@dev')
      expect(acquired).toMatchObject({ kind: 'blocked' })
      if (acquired.kind !== 'blocked') return
      expect(acquired.upstream).toEqual([
        expect.objectContaining({
          jobId: 'a@dev',
          runnerId: 'gone-runner-1-99-abcdef',
          lastError: HEARTBEAT_TIMEOUT_ERROR
        })
      ])
      expect(isRunnerLost(acquired.upstream[0].lastError)).toBe(true)
      expect(
        upstreamRunnerLostText([{ jobId: 'a@dev', runnerId: 'gone-runner-1-99-abcdef' }])
      ).toBe(
        'upstream runner lost: a@dev (runner gone-runner-1-99-abcdef stopped heartbeating mid-job)'
      )
    } finally {
      server.setOptions({ heartbeatTimeoutMs: 300_000 })
    }
  })

  it('the status summary says runner lost with the runner and its GitHub job, not a step failure', () => {
    const statusPlan = planOf({ 'a@dev': [], 'b@dev': ['a@dev'] })
    const t0 = Date.parse('2026-12-03T10:00:00Z')
    const at = (s: number) => new Date(t0 + s * 1000).toISOString()
    const view = classifyRun(
      statusPlan,
      'run-lost',
      {
        runId: 'run-lost',
        status: 'failed',
        planChecksum: statusPlan.id,
        createdAt: at(0),
        updatedAt: at(400),
        jobTotal: 2,
        jobDone: 0,
        jobFailed: 1
      },
      [
        {
          jobId: 'a@dev',
          component: 'a',
          status: 'failed',
          deps: [],
          runnerId: 'gh-runner-7-1-42-abcdef',
          startedAt: at(1),
          finishedAt: at(330),
          lastError: HEARTBEAT_TIMEOUT_ERROR,
          heartbeatAt: at(30)
        },
        {
          jobId: 'b@dev',
          component: 'b',
          status: 'pending',
          deps: ['a@dev'],
          runnerId: null,
          startedAt: null,
          finishedAt: null,
          lastError: null,
          heartbeatAt: null
        }
      ]
    )
    expect(view.byId.get('a@dev')).toMatchObject({ outcome: 'failed', runnerLost: true })
    expect(view.byId.get('b@dev')).toMatchObject({ outcome: 'blocked', blockedBy: ['a@dev'] })
    expect(problemLine(view)).toBe('1 runner lost (a@dev); 1 blocked (b@dev)')
    const link = 'https://github.com/acme/monorepo/actions/runs/1/job/7'
    const summary = renderStatusSummary({
      view,
      planId: statusPlan.id,
      links: new Map([
        [
          'a@dev',
          {
            id: 7,
            name: 'run a@dev',
            htmlUrl: link,
            runnerName: 'gh-runner-7',
            startedAt: at(0),
            completedAt: null,
            runAttempt: 1
          }
        ]
      ]),
      tails: { tails: new Map(), notFetched: 0 },
      notes: [],
      attempt: 1,
      now: t0 + 1_000_000
    })
    expect(summary).toContain('a@dev: runner lost</summary>')
    expect(summary).toContain(
      'Runner lost&#58; runner gh-runner-7-1-42-abcdef stopped heartbeating'
    )
    expect(summary).toContain(`[its GitHub job](${link})`)
    expect(summary).toContain('Re-run failed jobs')
    expect(summary).toContain('✗ runner lost')
    expect(summary).not.toContain('Error reported to the backend')
    expect(runnerLostText({ runnerId: null })).toMatch(/^runner lost: its runner stopped/)
    expect(RERUN_AFTER_RUNNER_LOST).toMatch(/never finished/)
  })
})
