/**
 * Pool mode end to end (see pool.test.ts): wide-deep on the auto pool from the bundled plan
 * action's workers output, and two pools over environment slices of one run.
 */
import { describe, expect, it } from '@jest/globals'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Harness } from '../demo/harness.js'
import { BACKEND_BUILDS, type BackendBuild } from '../testing/coordination-server.js'
import { expectEachJobRanOnce, jobResults, poolSuite, wideDeep } from '../testing/pool-checks.js'

const { s, tempDir, planInputs, startWorkers } = poolSuite()

describe('pool mode end to end: wide-deep', () => {
  // On each build of orun-backend (a deployment does not say which it runs), with orun 2.54 on
  // the older build and 2.75 on the newer one.
  it.each(BACKEND_BUILDS)(
    'runs wide-deep exactly once on the auto pool, each job in one worker check, logs stored (backend build %s)',
    async (build: BackendBuild) => {
      const orun = build === '2026-05-08' ? '2.75.0' : '2.54.0'
      const harness = (s.harness = await new Harness({
        server: { build },
        env: { ORUN_STANDIN_VERSION: orun }
      }).start())
      const ws = tempDir('orun-pool-wd-')
      const planFile = join(tempDir('orun-pool-wd-plan-'), 'plan.json')
      writeFileSync(planFile, wideDeep(1))
      const plan = await harness.plan(ws, {
        'plan-file': planFile,
        'backend-url': harness.server.url,
        workers: 'auto'
      })
      expect(plan.exitCode).toBe(0)
      const indexes = JSON.parse(plan.outputs.workers) as number[]
      // 8: ceil(40 / 6) = 7 would leave a root for a second step (pool.test.ts 'auto workers').
      expect(indexes).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      const planJobs = (
        JSON.parse(readFileSync(plan.outputs['plan-file'], 'utf8')) as {
          jobs: Array<{ id: string; dependsOn?: string[] }>
        }
      ).jobs
      const workers = startWorkers(
        harness,
        {
          'run-id': plan.outputs['run-id'],
          'plan-id': plan.outputs['plan-id'],
          'plan-file': plan.outputs['plan-file']
        },
        indexes
      )
      const results = (await Promise.all(workers.map(w => w.done))).map(r => r.main)

      expectEachJobRanOnce(harness, planJobs, results)
      const runId = plan.outputs['run-id']
      expect(harness.server.jobsOf(runId).every(job => job.status === 'success')).toBe(true)
      // One section per job in the worker's log, no nested groups of its own.
      const busiest = results.reduce((a, b) =>
        Object.keys(jobResults(a)).length >= Object.keys(jobResults(b)).length ? a : b
      )
      const ran = Object.keys(jobResults(busiest))
      expect(ran.length).toBeGreaterThan(1)
      for (const jobId of ran) expect(busiest.stdout).toContain(`── orun run ${jobId} ──`)
      expect(busiest.stdout).not.toContain('::group::orun run')
      for (const jobId of ran) expect(busiest.summary).toContain(`\`${jobId}\``)
      expect(busiest.summary).toMatch(
        /Pool worker \d+: ran \d+ job\(s\), then left: (nothing left|enough workers)/
      )
      const log = await harness.fetchLog(runId, 'api@prod.smoke')
      expect(log).toContain('api prod done')
    },
    240_000
  )

  it('two pools over environment slices: each runs only its slice, once, after upstream jobs of the other', async () => {
    const harness = (s.harness = await new Harness().start())
    const text = wideDeep(0.2)
    const { jobs, runId, inputs } = planInputs(text)
    const environment = new Map(
      (JSON.parse(text) as { jobs: Array<{ id: string; environment: string }> }).jobs.map(job => [
        job.id,
        job.environment
      ])
    )
    const slices = { dev: 'dev', rest: 'qa, stage, prod' }
    const pools = Object.entries(slices).map(([name, environments]) => ({
      name,
      environments,
      workers: startWorkers(harness!, { ...inputs, environments }, [1, 2])
    }))
    const results = await Promise.all(
      pools.map(async pool => ({
        ...pool,
        results: (await Promise.all(pool.workers.map(w => w.done))).map(r => r.main)
      }))
    )
    const all = results.flatMap(pool => pool.results)
    expectEachJobRanOnce(harness, jobs, all)
    // Each worker ran jobs of its own slice only.
    for (const pool of results) {
      const outside = pool.results
        .flatMap(result => Object.keys(jobResults(result)))
        .filter(jobId => (environment.get(jobId) === 'dev') !== (pool.name === 'dev'))
      expect(outside).toEqual([])
    }
    expect(harness.server.jobsOf(runId).every(job => job.status === 'success')).toBe(true)
  }, 240_000)
})
