/**
 * The run action's run() in-process (see run-main.test.ts), continued: pool workers and re-run
 * attempts. A file of its own so jest runs it beside run-main.test.ts.
 */
import { afterEach, describe, expect, it } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import * as core from '../__fixtures__/core.js'
import { sharedPlanText } from '../testing/fixtures.js'
import { generatePlan } from '../testing/plan-generator.js'
import {
  BackendClient,
  createRunAs,
  createTokenSource,
  executed,
  freshRunId,
  given,
  server,
  singleJobPlan,
  useRunMainSetup
} from '../testing/run-main-setup.js'

const { run } = await import('../src/run/main.js')

useRunMainSetup()

describe('run(): pool mode and re-runs, in-process', () => {
  afterEach(() => {
    delete process.env.GITHUB_RUN_ATTEMPT
    delete process.env.GITHUB_RUN_ID
  })

  it('a pool worker runs every job of a chain in DAG order, then leaves', async () => {
    const runId = freshRunId()
    given(sharedPlanText('failing-upstream').replace(/exit 3/g, 'exit 0'), {
      'run-id': runId,
      worker: '1'
    })
    await run()
    expect(core.setFailed).not.toHaveBeenCalled()
    expect(core.outputs.status).toBe('success')
    expect(executed()).toEqual(['foundation@dev.smoke', 'api@dev.smoke', 'web@dev.smoke'])
    expect(server.jobsOf(runId).map(j => [j.jobId, j.status, j.claims])).toEqual([
      ['foundation@dev.smoke', 'success', 1],
      ['api@dev.smoke', 'success', 1],
      ['web@dev.smoke', 'success', 1]
    ])
    expect(Object.keys(JSON.parse(core.outputs['job-results']))).toEqual([
      'foundation@dev.smoke',
      'api@dev.smoke',
      'web@dev.smoke'
    ])
  })

  it('a pool worker under the rate limit claims the rest of its own share without reading again', async () => {
    const runId = freshRunId()
    const { plan } = generatePlan({ jobs: 6, depth: 1, minSeconds: 0, maxSeconds: 0 })
    plan.metadata.checksum = randomBytes(16).toString('hex')
    // Burst 2: the worker's first requests draw a 429, so the limit binds from the start.
    server.setOptions({ rateLimit: { burst: 2, perSecond: 2 } })
    try {
      given(JSON.stringify(plan), { 'run-id': runId, worker: '1', 'pool-size': '2' })
      await run()
    } finally {
      server.setOptions({ rateLimit: false })
    }
    expect(core.setFailed).not.toHaveBeenCalled()
    const ids = plan.jobs.map(job => job.id)
    // Its own share (every other job in plan order) first, then what worker 2 never came for.
    expect(executed().slice(0, 3)).toEqual([ids[0], ids[2], ids[4]])
    expect(executed().slice(3).sort()).toEqual([ids[1], ids[3], ids[5]])
    expect(server.jobsOf(runId).every(job => job.status === 'success' && job.claims === 1)).toBe(
      true
    )
    const answered = (route: string) =>
      server.requests.filter(r => r.route === route && r.status === 200 && r.path.includes(runId))
        .length
    expect(answered('claim')).toBe(6)
    // One read for its own three jobs, one before each of the three others (its own share was
    // used up), and the last one that finds nothing: 5, where a read before every job makes 7.
    expect(answered('runnable')).toBe(5)
  })

  it("a pool worker's final log outlasts a rate limit that holds it back longer than a matrix runner waits", async () => {
    const runId = freshRunId()
    given(singleJobPlan('echo paced-log-line'), { 'run-id': runId, worker: '1' })
    // Budgets at 1/50: a matrix runner gives its final log 1.2 s, a pool worker 6 s; three 429s
    // in a row hold a paced upload back for about 3 s (each retry waits out Retry-After).
    process.env.ORUN_ACTION_BUDGET_SCALE = '0.02'
    server.inject('uploadLog', { kind: 'rateLimit', count: 3 })
    try {
      await run()
    } finally {
      delete process.env.ORUN_ACTION_BUDGET_SCALE
      server.clearFaults()
    }
    expect(core.setFailed).not.toHaveBeenCalled()
    expect(core.warning).not.toHaveBeenCalledWith(
      expect.stringContaining('Gave up uploading the job log')
    )
    expect(server.storedLog(runId, 'solo@dev.smoke')).toContain('paced-log-line')
  })

  it('attempt 2 carries the earlier successes into its own run and runs only its own job', async () => {
    const planText = sharedPlanText('failing-upstream').replace(/exit 3/g, 'exit 0')
    const first = freshRunId()
    const client = new BackendClient({
      baseUrl: server.url,
      tokens: createTokenSource({ log: () => {} })
    })
    await createRunAs(client, first, planText)
    // Attempt 1: foundation succeeded, api failed, web never ran.
    for (const [job, status] of [
      ['foundation@dev.smoke', 'success'],
      ['api@dev.smoke', 'failed']
    ] as const) {
      expect((await client.claim(first, job, 'attempt-1')).claimed).toBe(true)
      await client.update(first, job, 'attempt-1', status, status === 'failed' ? 'boom' : undefined)
    }
    process.env.GITHUB_RUN_ATTEMPT = '2'
    given(planText, { 'run-id': first, job: 'api@dev.smoke' })
    await run()

    expect(core.setFailed).not.toHaveBeenCalled()
    expect(core.outputs['run-id']).toBe(`${first}-a2`)
    expect(executed()).toEqual(['api@dev.smoke'])
    const second = server.jobsOf(`${first}-a2`)
    expect(second.find(j => j.jobId === 'foundation@dev.smoke')).toMatchObject({
      status: 'success',
      claims: 1
    })
    expect(second.find(j => j.jobId === 'foundation@dev.smoke')!.lastError).toMatch(
      /carried over from attempt 1/
    )
    expect(second.find(j => j.jobId === 'api@dev.smoke')).toMatchObject({ status: 'success' })
  })
})
