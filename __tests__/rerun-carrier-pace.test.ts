/**
 * The pace of a re-run's carrier (src/run/rerun.ts), in-process: the runner that makes the new
 * attempt's run carries the earlier successes one job (a claim and an update) at a time, at the
 * pace the learned limit allows. The sleeps are recorded, not waited.
 */
import { describe, expect, it } from '@jest/globals'
import { sharedPlanText } from '../testing/fixtures.js'
import {
  BackendClient,
  createRunAs,
  createTokenSource,
  freshRunId,
  server,
  useRunMainSetup
} from '../testing/run-main-setup.js'

const { prepareRerun, CARRY_INTERVAL_MS, TIGHT_CARRY_INTERVAL_MS } =
  await import('../src/run/rerun.js')
const { LearnedLimit } = await import('../src/run/pace.js')

useRunMainSetup()

/** Attempt 1 of wide-deep with its first `succeeded` jobs (DAG order) successful; attempt 2's gaps. */
async function carryGaps(succeeded: number, limit?: { scale(): number }): Promise<number[]> {
  const client = new BackendClient({
    baseUrl: server.url,
    tokens: createTokenSource({ log: () => {} })
  })
  const first = freshRunId()
  const plan = await createRunAs(client, first, sharedPlanText('wide-deep'))
  const done = plan.order.slice(0, succeeded).map(job => job.id)
  for (const job of done) {
    expect((await client.claim(first, job, 'attempt-1')).claimed).toBe(true)
    await client.update(first, job, 'attempt-1', 'success')
  }
  const sleeps: number[] = []
  const rerun = await prepareRerun({
    client,
    plan,
    runId: first,
    attempt: 2,
    targets: [plan.order[succeeded]!.id],
    runnerId: 'attempt-2',
    log: () => {},
    warn: message => {
      throw new Error(message)
    },
    sleep: async ms => {
      sleeps.push(ms)
    },
    random: () => 0.5,
    ...(limit ? { limit } : {})
  })
  expect(rerun.carrier).not.toBeNull()
  const before = sleeps.length
  await rerun.carrier!.start()
  // Every earlier success was carried, each claimed once.
  const carried = server.jobsOf(rerun.runId).filter(j => done.includes(j.jobId))
  expect(carried.map(j => [j.status, j.claims])).toEqual(done.map(() => ['success', 1]))
  // start() first waits for the crowd's start-up and the new run to settle (the stand-in's init
  // window can answer the first claim 404: retried with sleeps of its own); the last sleeps are
  // the gaps between two carried jobs.
  expect(sleeps.length - before).toBeGreaterThanOrEqual(succeeded)
  return sleeps.slice(-(succeeded - 1))
}

/** A runner whose plan step's probe found a bucket of this size (no 429 of its own yet). */
const hinted = (burst: number) =>
  new LearnedLimit(
    () => 0,
    () => undefined,
    { burst, stated: true }
  )

describe('a re-run carrier paces its claims by the limit it learned', () => {
  it('on a tight limit (5/s: the hint, or nothing known) it leaves half the refill to the other runners', async () => {
    expect(await carryGaps(6, hinted(20))).toEqual(Array(5).fill(TIGHT_CARRY_INTERVAL_MS))
    // A runner that was told nothing assumes the tight limit.
    expect(await carryGaps(4)).toEqual(Array(3).fill(TIGHT_CARRY_INTERVAL_MS))
  })

  it('on an ample limit (the 30/s build) it carries at 10 requests a second', async () => {
    expect(await carryGaps(6, hinted(300))).toEqual(Array(5).fill(CARRY_INTERVAL_MS))
  })
})
