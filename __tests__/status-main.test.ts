/**
 * The status action's run() in-process (model: actions/typescript-action
 * __tests__/main.test.ts), with the typed @actions/core fixture, the local
 * coordination server and the stand-in GitHub API. The bundle is tested as a
 * process in status-action.test.ts; this suite reaches the same code in-process
 * so its coverage is measured.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import * as path from 'node:path'
import * as core from '../__fixtures__/core.js'
import { startCoordinationServer, type CoordinationServer } from '../testing/coordination-server.js'
import { Scratch } from '../testing/scratch.js'
import { sharedPlanText } from '../testing/fixtures.js'
import {
  DEFAULT_GITHUB_TOKEN,
  startGitHubApiServer,
  type GitHubApiServer
} from '../testing/github-api-server.js'

const REPOSITORY = 'acme/monorepo'
const ENV_KEYS = [
  'GITHUB_WORKSPACE',
  'RUNNER_TEMP',
  'GITHUB_RUN_ID',
  'GITHUB_RUN_ATTEMPT',
  'GITHUB_REPOSITORY',
  'GITHUB_API_URL',
  'ACTIONS_ID_TOKEN_REQUEST_URL',
  'ACTIONS_ID_TOKEN_REQUEST_TOKEN',
  'ORUN_BACKEND_URL'
]
const scratch = new Scratch(ENV_KEYS)
const tempDir = (prefix: string) => scratch.tempDir(prefix)
// @actions/github reads GITHUB_API_URL once, when it is first imported: the stand-in API
// must be up, and named there, before the action is.
const api: GitHubApiServer = await startGitHubApiServer()
process.env.GITHUB_API_URL = api.url

jest.unstable_mockModule('@actions/core', () => core)
const { run } = await import('../src/status/main.js')
const { UserError } = await import('../src/common/errors.js')
const { BackendClient } = await import('../src/backend/client.js')
const { createTokenSource } = await import('../src/backend/auth.js')
const { parsePlan } = await import('../src/plan/model.js')
const { toBackendPlan } = await import('../src/backend/plan.js')

let server: CoordinationServer
let workspace: string
beforeAll(async () => {
  // The status step runs long after the last log upload: the log read lag is over by then.
  server = await startCoordinationServer({ rateLimit: false, logVisibilityMs: 0 })
})

afterAll(async () => {
  await server.close()
  await api.close()
  scratch.cleanUp()
})

beforeEach(() => {
  core.reset()
  workspace = tempDir('orun-status-main-ws-')
  Object.assign(process.env, server.tokenEnv(), {
    GITHUB_WORKSPACE: workspace,
    RUNNER_TEMP: tempDir('orun-status-main-tmp-'),
    GITHUB_RUN_ID: '777',
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_REPOSITORY: REPOSITORY,
    GITHUB_API_URL: api.url
  })
  delete process.env.ORUN_BACKEND_URL
})

/** A plan file in the workspace with a fresh plan id, and the inputs every test shares. */
function given(fixture: string, inputs: Record<string, string> = {}) {
  const file = JSON.parse(sharedPlanText(fixture))
  file.metadata.checksum = `sha256-${randomBytes(32).toString('hex')}`
  const text = JSON.stringify(file)
  writeFileSync(path.join(workspace, 'plan.json'), text)
  const plan = parsePlan(text, 'plan.json')
  const runId = `status-${randomBytes(4).toString('hex')}`
  Object.assign(core.inputs, {
    'run-id': runId,
    'backend-url': server.url,
    'plan-file': 'plan.json',
    ...inputs
  })
  return { plan, runId }
}

/** Plays the matrix runners: creates the run and ends each listed job as given. */
async function played(
  plan: ReturnType<typeof parsePlan>,
  runId: string,
  ends: Record<string, 'success' | 'failed'>
) {
  const client = new BackendClient({
    baseUrl: server.url,
    tokens: createTokenSource({ log: () => {} })
  })
  await client.createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
  await server.whenVisible(runId)
  for (const [jobId, status] of Object.entries(ends)) {
    expect((await client.claim(runId, jobId, 'runner-1')).claimed).toBe(true)
    await client.uploadLog(runId, jobId, `${jobId} output\nlast line of ${jobId}\n`)
    await client.update(
      runId,
      jobId,
      'runner-1',
      status,
      status === 'failed' ? 'exit 3' : undefined
    )
  }
}

describe('run(): the whole run read back', () => {
  it('a run where every job succeeded is a success, linked to the GitHub jobs', async () => {
    const { plan, runId } = given('single', { 'github-token': DEFAULT_GITHUB_TOKEN })
    await played(plan, runId, { 'solo@dev.smoke': 'success' })
    api.setJobs(REPOSITORY, '777', 1, [
      { name: 'run solo@dev.smoke', conclusion: 'success', runnerName: 'runner-1' }
    ])

    await run()

    expect(core.outputs.status).toBe('success')
    expect(JSON.parse(core.outputs.counts)).toMatchObject({ success: 1, failed: 0, blocked: 0 })
    expect(core.outputs['failed-jobs']).toBe('[]')
    expect(core.outputs['blocked-jobs']).toBe('[]')
    expect(core.outputs['not-run-jobs']).toBe('[]')
    expect(core.outputs['run-id']).toBe(runId)
    expect(core.summaryText).toContain('solo@dev.smoke')
    expect(core.error).not.toHaveBeenCalled()
    expect(api.requests.some(r => r.path.includes('/actions/runs/777/attempts/1/jobs'))).toBe(true)
  })

  it('a failed job and its blocked dependents fail the step, with an annotation and the log tail', async () => {
    const { plan, runId } = given('failing-upstream')
    await played(plan, runId, { 'foundation@dev.smoke': 'failed' })

    const failure = run()
    await expect(failure).rejects.toBeInstanceOf(UserError)
    await expect(failure).rejects.toThrow(`orun run ${runId} is failed: `)

    expect(core.outputs.status).toBe('failed')
    expect(JSON.parse(core.outputs['failed-jobs'])).toEqual(['foundation@dev.smoke'])
    expect(JSON.parse(core.outputs['blocked-jobs'])).toEqual(['api@dev.smoke', 'web@dev.smoke'])
    expect(core.error).toHaveBeenCalledTimes(1)
    expect(String(core.error.mock.calls[0][0])).toBe('foundation@dev.smoke: exit 3')
    expect(core.summaryText).toContain('last line of foundation@dev.smoke')
    // Without a github-token the summary is still written, without links, and says why.
    expect(core.logged(core.notice).some(n => n.includes("No 'github-token'"))).toBe(true)
  })

  it('fail-on: none reports the same run but passes', async () => {
    const { plan, runId } = given('failing-upstream', { 'fail-on': 'none' })
    await played(plan, runId, { 'foundation@dev.smoke': 'failed' })
    await run()
    expect(core.outputs.status).toBe('failed')
  })

  it('a run that does not exist is incomplete, every job not run', async () => {
    given('single')
    await expect(run()).rejects.toThrow(/is incomplete/)
    expect(core.outputs.status).toBe('incomplete')
    expect(JSON.parse(core.outputs['not-run-jobs'])).toEqual(['solo@dev.smoke'])
    expect(core.logged(core.notice).some(n => n.includes('does not exist on the backend'))).toBe(
      true
    )
  })

  it('job-count 0 is a success at once, without reading anything', async () => {
    const before = server.requests.length
    Object.assign(core.inputs, { 'run-id': 'status-empty', 'job-count': '0' })
    await run()
    expect(core.outputs.status).toBe('success')
    expect(core.outputs['failed-jobs']).toBe('[]')
    expect(server.requests.length).toBe(before)
  })

  it.each(['0x0', '0e1', '+0', '-0', '0.0', '0x10', '1e1', '+5'])(
    "refuses job-count '%s' before any request: no false green from a zero spelled oddly",
    async raw => {
      const before = server.requests.length
      Object.assign(core.inputs, { 'run-id': 'status-odd-count', 'job-count': raw })
      await expect(run()).rejects.toThrow(
        `Input 'job-count' must be a whole number (the plan job's job-count output), got '${raw}'.`
      )
      expect(core.outputs.status).not.toBe('success')
      expect(server.requests.length).toBe(before)
    }
  )

  it('refuses a fail-on word it does not know', async () => {
    given('single', { 'fail-on': 'failed, typo' })
    await expect(run()).rejects.toThrow(
      "Input 'fail-on' has 'typo': use a list of failed, blocked, not-run, or 'any' (the default), or 'none'."
    )
  })
})
