/**
 * Pool mode end to end (see pool.test.ts): a 300-job plan on 8 workers, and workers that
 * share an index. A file of its own so it runs beside the other pool suites.
 */
import { describe, expect, it } from '@jest/globals'
import { Harness } from '../demo/harness.js'
import { generatePlan } from '../testing/plan-generator.js'
import { expectEachJobRanOnce, poolSuite, wideDeep } from '../testing/pool-checks.js'

const { s, planInputs, startWorkers } = poolSuite()

describe('pool mode end to end: crowds', () => {
  it('runs a 300-job plan exactly once on 8 workers, with no worker left behind', async () => {
    // A generous rate limit: this test is about exactly-once, not about the budget.
    const harness = (s.harness = await new Harness({
      server: { rateLimit: { burst: 60, perSecond: 40 } }
    }).start())
    const { plan } = generatePlan({ jobs: 300, depth: 6, minSeconds: 0, maxSeconds: 0.3 })
    const { jobs, runId, inputs } = planInputs(JSON.stringify(plan))
    const workers = startWorkers(harness, inputs, [1, 2, 3, 4, 5, 6, 7, 8])
    const results = (await Promise.all(workers.map(w => w.done))).map(r => r.main)
    expectEachJobRanOnce(harness, jobs, results)
    const stored = harness.server.jobsOf(runId)
    expect(stored.filter(job => job.status === 'success')).toHaveLength(300)
    // Nobody lingers: every worker is gone within a few idle polls of the last result.
    const lastResult = Math.max(...stored.map(job => Date.parse(job.finishedAt!)))
    for (const result of results) expect(result.endedAt - lastResult).toBeLessThan(15_000)
  }, 420_000)

  it('workers sharing an index still run every job once', async () => {
    const harness = (s.harness = await new Harness().start())
    const { jobs, runId, inputs } = planInputs(wideDeep(0))
    const workers = startWorkers(harness, inputs, [1, 1, 2, 2])
    const results = (await Promise.all(workers.map(w => w.done))).map(r => r.main)
    expectEachJobRanOnce(harness, jobs, results)
    expect(harness.server.jobsOf(runId).every(job => job.status === 'success')).toBe(true)
  }, 240_000)
})
