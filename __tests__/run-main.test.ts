/**
 * The run action's run() and the post step's post() in-process (model:
 * actions/typescript-action __tests__/main.test.ts): @actions/core is the typed
 * fixture in __fixtures__/core.ts, the backend is the local coordination server
 * and orun is the stand-in, both real. The bundles are tested as processes in
 * run-action.test.ts and e2e.test.ts; this suite reaches the same code in-process
 * so its coverage is measured.
 */
import { describe, expect, it, jest } from '@jest/globals'
import { writeFileSync } from 'node:fs'
import * as path from 'node:path'
import * as core from '../__fixtures__/core.js'
import { sharedPlanText } from '../testing/fixtures.js'
import {
  createRunAs,
  executed,
  freshRunId,
  given,
  readerClient,
  server,
  singleJobPlan,
  useRunMainSetup,
  workspace
} from '../testing/run-main-setup.js'
import { effectiveCommands } from '../testing/workflow-commands.js'

const { run } = await import('../src/run/main.js')
const { post } = await import('../src/run/post.js')
const { UserError } = await import('../src/common/errors.js')

useRunMainSetup()

describe('run(): a slice of the plan on one runner', () => {
  it('runs the dev slice in DAG order, reports each job and sets the outputs', async () => {
    const runId = freshRunId()
    given(sharedPlanText('remote-state-matrix'), { 'run-id': runId, environments: 'dev' })

    await run()

    expect(executed()).toEqual(['foundation@dev.smoke', 'api@dev.smoke', 'web@dev.smoke'])
    expect(core.outputs.status).toBe('success')
    expect(core.outputs['run-id']).toBe(runId)
    const results = JSON.parse(core.outputs['job-results'])
    expect(Object.keys(results)).toEqual(['foundation@dev.smoke', 'api@dev.smoke', 'web@dev.smoke'])
    for (const result of Object.values(results)) {
      expect(result).toMatchObject({ status: 'success', tookOver: false })
    }
    expect(
      server
        .jobsOf(runId)
        .map(j => `${j.jobId}=${j.status}`)
        .sort()
    ).toEqual([
      'api@dev.smoke=success',
      'api@stage.smoke=pending',
      'foundation@dev.smoke=success',
      'foundation@stage.smoke=pending',
      'web@dev.smoke=success',
      'web@stage.smoke=pending'
    ])
    // What was stored (a read right after the upload may still answer the previous version).
    expect(server.storedLog(runId, 'api@dev.smoke')).toContain('api dev start')
    expect(core.summaryText).toContain(runId)
    expect(core.summaryText).toContain('web@dev.smoke')
    // Nothing is left for the post step once every claimed job was reported.
    expect(JSON.parse(core.state['orun-in-flight']).jobs).toEqual([])
    expect(core.setFailed).not.toHaveBeenCalled()
  })

  it('does not run a job again that already succeeded in this run', async () => {
    const runId = freshRunId()
    given(sharedPlanText('single'), { 'run-id': runId, job: 'solo@dev.smoke' })
    await run()
    expect(core.outputs.status).toBe('success')

    core.reset()
    given(sharedPlanText('single'), { 'run-id': runId, job: 'solo@dev.smoke' })
    await run()

    expect(executed()).toEqual(['solo@dev.smoke'])
    expect(core.outputs.status).toBe('already-complete')
    expect(JSON.parse(core.outputs['job-results'])['solo@dev.smoke'].status).toBe(
      'already-complete'
    )
  })
})

describe("run(): the job's own masks reach GitHub's log", () => {
  it("re-prints a step's ::add-mask:: outside orun's stop-commands block, before the value", async () => {
    const secret = 'masked-in-a-step-0815'
    process.env.GITHUB_ACTIONS = 'true' // orun's GitHub Actions mode: step output in blocks
    given(singleJobPlan(`V=${secret}; echo "::add-mask::$V"; echo "printed $V"`), {
      'run-id': freshRunId(),
      job: 'solo@dev.smoke'
    })
    let stdout = ''
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation(((chunk: string) => {
      stdout += String(chunk)
      return true
    }) as typeof process.stdout.write)
    try {
      await run()
    } finally {
      spy.mockRestore()
    }
    expect(core.outputs.status).toBe('success')
    expect(stdout).toContain(`::stop-commands::orun-stop-solo@dev.smoke`)
    const masks = effectiveCommands(stdout).filter(c => c.name === 'add-mask' && c.data === secret)
    expect(masks).toHaveLength(1)
    expect(masks[0].offset).toBeLessThan(stdout.indexOf(`printed ${secret}`))
  })
})

describe('run(): failures', () => {
  it('reports a failing job as failed with the tail of its output, and fails the step', async () => {
    const runId = freshRunId()
    given(singleJobPlan('echo "about to fail" && exit 3'), {
      'run-id': runId,
      job: 'solo@dev.smoke'
    })

    const failure = run()
    await expect(failure).rejects.toBeInstanceOf(UserError)
    await expect(failure).rejects.toThrow(/^solo@dev\.smoke: failed: /)

    expect(core.outputs.status).toBe('failed')
    const [job] = server.jobsOf(runId)
    expect(job.status).toBe('failed')
    expect(job.lastError).toContain('about to fail')
  })

  it('ends as blocked, without running it, when an upstream job failed', async () => {
    const runId = freshRunId()
    const planText = sharedPlanText('failing-upstream')
    // Another runner claims the upstream job and reports it failed.
    const other = readerClient()
    const plan = await createRunAs(other, runId, planText)
    const failing = plan.order.find(j => !j.dependsOn?.length)!
    const dependent = plan.order.find(j => j.dependsOn?.includes(failing.id))!
    expect((await other.claim(runId, failing.id, 'other-runner')).claimed).toBe(true)
    await other.update(runId, failing.id, 'other-runner', 'failed', 'exit 1')

    given(planText, { 'run-id': runId, job: dependent.id })
    await expect(run()).rejects.toThrow(`${dependent.id}: blocked`)

    expect(executed()).toEqual([])
    expect(core.outputs.status).toBe('blocked')
    expect(server.jobsOf(runId).find(j => j.jobId === dependent.id)?.status).toBe('pending')
    // The job was in the state while its claim could be granted (the main step might be killed
    // before the answer), and left it when the claim was refused: no post step work.
    const saved = core.saveState.mock.calls
      .filter(([name]) => name === 'orun-in-flight')
      .map(([, value]) => JSON.parse(String(value)).jobs)
    expect(saved).toContainEqual([{ jobId: dependent.id, spoolFile: '', unconfirmed: true }])
    expect(saved.at(-1)).toEqual([])
  })

  it('stops on SIGTERM, reports the claimed job as failed (cancelled) and says so', async () => {
    const runId = freshRunId()
    process.env.ORUN_STANDIN_DELAY_MS = '60000'
    given(sharedPlanText('single'), { 'run-id': runId, job: 'solo@dev.smoke' })

    const running = run()
    // Event-based: wait until the job is claimed on the server, then signal.
    const deadline = Date.now() + 30_000
    while (server.jobsOf(runId)[0]?.status !== 'running') {
      if (Date.now() > deadline) throw new Error('the job was never claimed')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    process.emit('SIGTERM', 'SIGTERM')

    await expect(running).rejects.toThrow('The run was cancelled')
    expect(core.outputs.status).toBe('failed')
    // The main step reports within its cancel budget (2.5 s, before GitHub's SIGKILL); on a
    // machine too busy for that (load 15 on 2 cores) it leaves the result to the post step,
    // which delivers the same one.
    if (server.jobsOf(runId)[0]?.status === 'running') await post()
    const [job] = server.jobsOf(runId)
    expect(job.status).toBe('failed')
    expect(job.lastError).toMatch(/cancel/)
  })
})

describe('post(): a job the main step claimed but never reported', () => {
  it('is marked failed (cancelled) and its spooled log is uploaded, redacted', async () => {
    const runId = freshRunId()
    const client = readerClient()
    await createRunAs(client, runId, sharedPlanText('single'))
    expect((await client.claim(runId, 'solo@dev.smoke', 'crashed-runner')).claimed).toBe(true)
    const spoolFile = path.join(workspace, 'spool.log')
    writeFileSync(spoolFile, 'deploying with hunter2-secret\n')
    process.env.RUN_MAIN_SECRET = 'hunter2-secret'
    core.inputs['redact-env'] = 'RUN_MAIN_SECRET'
    core.state['orun-in-flight'] = JSON.stringify({
      backendUrl: server.url,
      audience: 'orun',
      runId,
      runnerId: 'crashed-runner',
      jobs: [{ jobId: 'solo@dev.smoke', spoolFile }]
    })

    await post()

    const [job] = server.jobsOf(runId)
    expect(job.status).toBe('failed')
    expect(job.lastError).toMatch(/^cancelled: /)
    const log = server.storedLog(runId, 'solo@dev.smoke')
    expect(log).toContain('[orun action: the job was cancelled]')
    expect(log).not.toContain('hunter2-secret')
    expect(JSON.parse(core.state['orun-in-flight']).jobs).toEqual([])
  })

  it('redacts the uploaded log with every source the main step uses', async () => {
    const runId = freshRunId()
    const client = readerClient()
    await createRunAs(client, runId, sharedPlanText('single'))
    expect((await client.claim(runId, 'solo@dev.smoke', 'crashed-runner')).claimed).toBe(true)
    const githubToken = 'ghs_postStepGithubToken0123456789'
    const dbPassword = 'db-password-for-the-post-step!' // 30 bytes: base64 without padding
    const masked = 'value-the-job-masked-itself'
    const encoded = Buffer.from(dbPassword).toString('base64').replace(/=+$/, '')
    const spoolFile = path.join(workspace, 'spool.log')
    writeFileSync(
      spoolFile,
      `::add-mask::${masked}\n` +
        `${'filler line\n'.repeat(2_000)}` +
        `token ${githubToken}\nbasic ${encoded}\nmasked ${masked}\n`
    )
    process.env.ORUN_SECRET_POST_DB = dbPassword
    core.inputs['github-token'] = githubToken
    core.state['orun-in-flight'] = JSON.stringify({
      backendUrl: server.url,
      audience: 'orun',
      runId,
      runnerId: 'crashed-runner',
      jobs: [{ jobId: 'solo@dev.smoke', spoolFile }]
    })

    await post()

    const log = server.storedLog(runId, 'solo@dev.smoke')
    expect(log).toContain('token ***\nbasic ***\nmasked ***\n')
    for (const secret of [githubToken, encoded, dbPassword, masked])
      expect(log).not.toContain(secret)
  })

  it('leaves a job alone that another runner took over', async () => {
    const runId = freshRunId()
    const client = readerClient()
    await createRunAs(client, runId, sharedPlanText('single'))
    await client.claim(runId, 'solo@dev.smoke', 'new-owner')
    core.state['orun-in-flight'] = JSON.stringify({
      backendUrl: server.url,
      audience: 'orun',
      runId,
      runnerId: 'old-owner',
      jobs: [{ jobId: 'solo@dev.smoke', spoolFile: path.join(workspace, 'missing.log') }]
    })

    await post()

    expect(server.jobsOf(runId)[0]).toMatchObject({ status: 'running', runnerId: 'new-owner' })
    expect(core.logged(core.info).some(l => l.includes('no longer this runner'))).toBe(true)
  })

  it.each([
    ['granted', 'failed'],
    ['never granted', 'pending']
  ])(
    'settles a claim the main step sent but whose answer it never saw (%s)',
    async (claim, after) => {
      const runId = freshRunId()
      const client = readerClient()
      await createRunAs(client, runId, sharedPlanText('single'))
      if (claim === 'granted')
        expect((await client.claim(runId, 'solo@dev.smoke', 'killed-runner')).claimed).toBe(true)
      core.state['orun-in-flight'] = JSON.stringify({
        backendUrl: server.url,
        audience: 'orun',
        runId,
        runnerId: 'killed-runner',
        jobs: [{ jobId: 'solo@dev.smoke', spoolFile: '', unconfirmed: true }]
      })

      await post()

      expect(server.jobsOf(runId)[0]!.status).toBe(after)
      expect(core.warning).not.toHaveBeenCalled()
      expect(core.logged(core.info).join('\n')).toContain(
        claim === 'granted' ? 'Delivered' : 'was never this runner'
      )
      expect(JSON.parse(core.state['orun-in-flight']!).jobs).toEqual([])
    }
  )

  it('does nothing when nothing is in flight', async () => {
    const before = server.requests.length
    await post()
    expect(server.requests.length).toBe(before)
  })
})

describe('run(): the plan and the run must match', () => {
  it("refuses a plan-id that is not the plan file's", async () => {
    given(sharedPlanText('single'), {
      'run-id': freshRunId(),
      job: 'solo@dev.smoke',
      'plan-id': '000000000000'
    })
    await expect(run()).rejects.toThrow(
      `Input 'plan-id' is '000000000000', but the plan file ${path.join(workspace, 'plan.json')} has plan id '5e0143d6b3b9'. Pass the plan job's 'plan-id' output together with its plan.`
    )
  })

  it('refuses a run id the plan action made for another plan, without a request', async () => {
    given(sharedPlanText('single'), { 'run-id': 'gha-1-1-0123456789ab', job: 'solo@dev.smoke' })
    const before = server.requests.length
    await expect(run()).rejects.toThrow(
      "Run gha-1-1-0123456789ab is already used by a different plan (0123456789ab); this job's plan is 5e0143d6b3b9. Pass the plan job's 'run-id' and 'plan-id' outputs unchanged, or choose a new 'run-id'."
    )
    expect(server.requests.length).toBe(before)
  })

  it('refuses a custom run id that the backend holds for another plan', async () => {
    const runId = freshRunId()
    await createRunAs(readerClient(), runId, sharedPlanText('remote-state-matrix'))
    given(sharedPlanText('single'), { 'run-id': runId, job: 'solo@dev.smoke' })
    await expect(run()).rejects.toThrow(
      `Run ${runId} is already used by a different plan (905f6efbdd89); this job's plan is 5e0143d6b3b9.`
    )
    expect(executed()).toEqual([])
  })

  it('refuses a job that is not in the plan, naming some that are', async () => {
    given(sharedPlanText('single'), { 'run-id': freshRunId(), job: 'nope@dev.smoke' })
    await expect(run()).rejects.toThrow(
      "Input 'job' is 'nope@dev.smoke', which is not in plan 5e0143d6b3b9 (jobs: solo@dev.smoke). Use job: ${{ matrix.job }} with the plan job's 'jobs' output."
    )
  })

  it('refuses a slice of an environment the plan does not have', async () => {
    given(sharedPlanText('single'), { 'run-id': freshRunId(), environments: 'prod' })
    await expect(run()).rejects.toThrow(
      "Input 'environments' names 'prod', which the plan does not have. The plan has: dev."
    )
  })

  it('refuses a plan-file that cannot be read', async () => {
    Object.assign(core.inputs, {
      'backend-url': server.url,
      'run-id': freshRunId(),
      job: 'solo@dev.smoke',
      'plan-file': 'missing.json'
    })
    await expect(run()).rejects.toThrow(
      `Input 'plan-file' points to ${path.join(workspace, 'missing.json')}, which cannot be read`
    )
  })
})
