/**
 * The plan action's run() in-process (model: actions/typescript-action
 * __tests__/main.test.ts), with the typed @actions/core fixture, the stand-in
 * orun and the local coordination server. The bundle is tested as a process in
 * plan-action.test.ts; expectations here are literal (the fixture's known ids).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import * as core from '../__fixtures__/core.js'
import { REPO_ROOT, STANDIN_DIR } from '../testing/action-process.js'
import { startCoordinationServer, type CoordinationServer } from '../testing/coordination-server.js'
import { Scratch } from '../testing/scratch.js'
import { sharedPlanText } from '../testing/fixtures.js'

jest.unstable_mockModule('@actions/core', () => core)
const { run } = await import('../src/plan/main.js')
const { UserError } = await import('../src/common/errors.js')
const { readLimitHint } = await import('../src/common/limit-hint.js')

const ENV_KEYS = [
  'GITHUB_WORKSPACE',
  'RUNNER_TEMP',
  'GITHUB_RUN_ID',
  'GITHUB_RUN_ATTEMPT',
  'ACTIONS_ID_TOKEN_REQUEST_URL',
  'ACTIONS_ID_TOKEN_REQUEST_TOKEN',
  'ORUN_BACKEND_URL'
]
const scratch = new Scratch(ENV_KEYS)
const tempDir = (prefix: string) => scratch.tempDir(prefix)
let server: CoordinationServer
let workspace: string
beforeAll(async () => {
  server = await startCoordinationServer({ rateLimit: false })
})

afterAll(async () => {
  await server.close()
  scratch.cleanUp()
})

beforeEach(() => {
  core.reset()
  workspace = tempDir('orun-plan-main-ws-')
  Object.assign(process.env, server.tokenEnv(), {
    GITHUB_WORKSPACE: workspace,
    RUNNER_TEMP: tempDir('orun-plan-main-tmp-'),
    GITHUB_RUN_ID: '4242',
    GITHUB_RUN_ATTEMPT: '2'
  })
  delete process.env.ORUN_BACKEND_URL
})

// An old-shape plan (sourceplane.io/v1): no check names or runners in the plan, so the entry's
// name is made from its parts and runs-on is left to the workflow.
const entry = (component: string, env: string) => ({
  job: `${component}@${env}.smoke`,
  env,
  component,
  name: `${component} · ${env} · smoke`,
  'runs-on': ''
})
const REMOTE_STATE_JOBS = [
  entry('foundation', 'dev'),
  entry('api', 'dev'),
  entry('web', 'dev'),
  entry('foundation', 'stage'),
  entry('api', 'stage'),
  entry('web', 'stage')
]

describe('run(): a given plan file', () => {
  it('emits the matrix, the plan id and the run id derived from the workflow run', async () => {
    writeFileSync(path.join(workspace, 'plan.json'), sharedPlanText('remote-state-matrix'))
    Object.assign(core.inputs, { 'plan-file': 'plan.json', upload: 'false' })

    await run()

    expect(core.outputs['plan-id']).toBe('905f6efbdd89')
    expect(core.outputs['run-id']).toBe('gha-4242-2-905f6efbdd89')
    expect(JSON.parse(core.outputs.jobs)).toEqual(REMOTE_STATE_JOBS)
    expect(JSON.parse(core.outputs['job-ids'])).toEqual(REMOTE_STATE_JOBS.map(j => j.job))
    expect(core.outputs['job-count']).toBe('6')
    expect(JSON.parse(core.outputs.matrix)).toEqual({ include: REMOTE_STATE_JOBS })
    expect(core.outputs['artifact-name']).toBe('')
    // The plan is copied out of the workspace, byte for byte.
    expect(core.outputs['plan-file'].startsWith(process.env.RUNNER_TEMP!)).toBe(true)
    expect(readFileSync(core.outputs['plan-file'], 'utf8')).toBe(
      sharedPlanText('remote-state-matrix')
    )
    expect(core.summaryText).toContain('gha-4242-2-905f6efbdd89')
    expect(core.setFailed).not.toHaveBeenCalled()
  })

  it('creates the run on the backend when backend-url is set', async () => {
    // Attempt 1: a custom run id is used as given (later attempts work in '<id>-aN').
    process.env.GITHUB_RUN_ATTEMPT = '1'
    writeFileSync(path.join(workspace, 'plan.json'), sharedPlanText('single'))
    Object.assign(core.inputs, {
      'plan-file': 'plan.json',
      upload: 'false',
      'backend-url': server.url,
      'run-id': 'plan-main-created-run'
    })

    await run()

    expect(core.outputs['run-id']).toBe('plan-main-created-run')
    expect(server.jobsOf('plan-main-created-run')).toEqual([
      expect.objectContaining({ jobId: 'solo@dev.smoke', status: 'pending', claims: 0 })
    ])
    // The rate-limit probe (this server has no limit): its hint lies beside the plan it hands on.
    expect(readLimitHint(path.dirname(core.outputs['plan-file']))).toEqual({
      burst: 60,
      stated: false
    })
    expect(core.logged(core.info)).toContainEqual(
      expect.stringMatching(/^Rate limit: 60 reads answered without a 429/)
    )
  })

  it('an empty plan gives an empty matrix, a notice, and no run', async () => {
    writeFileSync(path.join(workspace, 'plan.json'), sharedPlanText('empty'))
    Object.assign(core.inputs, {
      'plan-file': 'plan.json',
      'backend-url': server.url,
      'run-id': 'plan-main-empty-run'
    })
    const before = server.requests.length

    await run()

    expect(core.outputs['job-count']).toBe('0')
    expect(core.outputs.jobs).toBe('[]')
    expect(core.outputs['artifact-name']).toBe('')
    expect(core.logged(core.notice)).toEqual([
      'The plan has no jobs: nothing to run. The jobs output is [].'
    ])
    expect(server.requests.length).toBe(before)
  })

  it('warns that scoping inputs are ignored with a plan file', async () => {
    writeFileSync(path.join(workspace, 'plan.json'), sharedPlanText('single'))
    Object.assign(core.inputs, { 'plan-file': 'plan.json', upload: 'false', environments: 'dev' })

    await run()

    expect(core.logged(core.warning)).toEqual([
      "'plan-file' is set, so the plan is not compiled: 'environments', 'components', 'changed', 'from-ci' and 'args' are ignored."
    ])
  })
})

describe('run(): compiling with orun', () => {
  it('compiles the intent in working-directory, scoped to one environment', async () => {
    copyFileSync(
      path.join(REPO_ROOT, 'demo', 'intent', 'intent.yaml'),
      path.join(workspace, 'intent.yaml')
    )
    Object.assign(core.inputs, {
      'orun-path': STANDIN_DIR,
      environments: 'stage',
      upload: 'false',
      'run-id': 'plan-main-compiled'
    })

    await run()

    // orun 2.54 ids (component.environment.job), check names and runners from the plan.
    expect(JSON.parse(core.outputs.jobs)).toEqual(
      ['foundation', 'api', 'web'].map(component => ({
        job: `${component}.stage.smoke`,
        env: 'stage',
        component,
        name: `${component} · stage · Smoke`,
        'runs-on': 'ubuntu-latest'
      }))
    )
    expect(core.group).toHaveBeenCalledTimes(1)
    expect(String(core.group.mock.calls[0][0])).toMatch(/^orun plan \(orun 2\.54\.0\)$/)
  })
})

describe('run(): user mistakes', () => {
  it('base without changed', async () => {
    Object.assign(core.inputs, { base: 'main' })
    await expect(run()).rejects.toThrow(
      "Inputs 'base' and 'head' only apply with 'changed: true'; set it or remove them."
    )
  })

  it('a working-directory that does not exist, before any orun is resolved', async () => {
    Object.assign(core.inputs, { 'working-directory': 'nowhere', 'orun-path': '/nonexistent' })
    const failure = run()
    await expect(failure).rejects.toBeInstanceOf(UserError)
    await expect(failure).rejects.toThrow(
      `Input 'working-directory' is ${path.join(workspace, 'nowhere')}, which does not exist.`
    )
  })

  it.each(['0x10', '1e1', '+5', '-0', '0.0', '5.0'])(
    "artifact-retention-days '%s', parsed as strictly as workers",
    async raw => {
      Object.assign(core.inputs, { 'artifact-retention-days': raw })
      await expect(run()).rejects.toThrow(
        `Input 'artifact-retention-days' is '${raw}'; use a whole number of days from 1 to 90`
      )
    }
  )

  it('a plan-file that cannot be read', async () => {
    Object.assign(core.inputs, { 'plan-file': 'missing.json' })
    await expect(run()).rejects.toThrow(
      `Input 'plan-file' points to ${path.join(workspace, 'missing.json')}, which cannot be read`
    )
  })

  it('no run id outside GitHub Actions', async () => {
    delete process.env.GITHUB_RUN_ID
    writeFileSync(path.join(workspace, 'plan.json'), sharedPlanText('single'))
    Object.assign(core.inputs, { 'plan-file': 'plan.json', upload: 'false' })
    await expect(run()).rejects.toThrow('GITHUB_RUN_ID is not set')
  })
})
