/**
 * The set-up the in-process run()/post() suites share (run-main*.test.ts): @actions/core is the
 * typed fixture (registered here, before any module that logs is loaded), one local coordination
 * server per file, a fresh workspace per test, and the helpers that write a plan and read what
 * ran. Import it before src/ modules, and call useRunMainSetup() once.
 */
import { afterAll, afterEach, beforeAll, beforeEach, jest } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import * as core from '../__fixtures__/core.js'
import { localRunInputs } from './action-process.js'
import { startCoordinationServer, type CoordinationServer } from './coordination-server.js'
import { sharedPlanText, writePlanCheckout } from './fixtures.js'
import { Scratch } from './scratch.js'

jest.unstable_mockModule('@actions/core', () => core)
export const { BackendClient } = await import('../src/backend/client.js')
export const { createTokenSource } = await import('../src/backend/auth.js')
const { parsePlan } = await import('../src/plan/model.js')
const { toBackendPlan } = await import('../src/backend/plan.js')

/** Creates the run on the server as another runner would, from the plan text. */
export async function createRunAs(
  client: InstanceType<typeof BackendClient>,
  runId: string,
  planText: string
) {
  const plan = parsePlan(planText, 'plan.json')
  await client.createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
  // The service needs a moment before a new run answers its other routes.
  await server.whenVisible(runId)
  return plan
}

const ENV_KEYS = [
  'GITHUB_WORKSPACE',
  'RUNNER_TEMP',
  'ACTIONS_ID_TOKEN_REQUEST_URL',
  'ACTIONS_ID_TOKEN_REQUEST_TOKEN',
  'ORUN_STANDIN_RECORD',
  'ORUN_STANDIN_DELAY_MS',
  'ORUN_BACKEND_URL',
  'ORUN_ACTION_BUDGET_SCALE',
  'RUN_MAIN_SECRET',
  'ORUN_SECRET_POST_DB',
  'GITHUB_ACTIONS'
]
const scratch = new Scratch(ENV_KEYS)
export const tempDir = (prefix: string) => scratch.tempDir(prefix)
export let server: CoordinationServer
export let workspace: string
let recordFile: string
/** Registers the hooks: one server per file, a fresh workspace and core fixture per test. */
export function useRunMainSetup(): void {
  beforeAll(async () => {
    server = await startCoordinationServer({ rateLimit: false })
  })

  afterAll(async () => {
    await server.close()
    scratch.cleanUp()
  })

  beforeEach(() => {
    core.reset()
    workspace = tempDir('orun-run-main-ws-')
    recordFile = path.join(workspace, 'record.jsonl')
    writeFileSync(recordFile, '')
    Object.assign(process.env, server.tokenEnv(), {
      GITHUB_WORKSPACE: workspace,
      RUNNER_TEMP: tempDir('orun-run-main-tmp-'),
      ORUN_STANDIN_RECORD: recordFile
    })
    delete process.env.ORUN_STANDIN_DELAY_MS
    delete process.env.ORUN_BACKEND_URL
  })

  afterEach(() => {
    process.removeAllListeners('SIGTERM')
    process.removeAllListeners('SIGINT')
  })
}

export const freshRunId = () => `custom-${randomBytes(4).toString('hex')}`

/** Writes the plan into the workspace and sets the inputs every test shares. */
export function given(planText: string, inputs: Record<string, string>): void {
  writePlanCheckout(workspace, planText)
  Object.assign(core.inputs, {
    ...localRunInputs(server.url),
    ...inputs
  })
}

/** The jobs the stand-in orun ran, in order. */
export function executed(): string[] {
  return readFileSync(recordFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map(line => (JSON.parse(line) as { job: string }).job)
}

/** A plan whose only job runs `script` (the single fixture, re-checksummed so its id is new). */
export function singleJobPlan(script: string): string {
  const plan = JSON.parse(sharedPlanText('single'))
  plan.jobs[0].steps[0].run = script
  plan.metadata.checksum = `sha256-${randomBytes(32).toString('hex')}`
  return JSON.stringify(plan)
}

export function readerClient() {
  return new BackendClient({ baseUrl: server.url, tokens: createTokenSource({ log: () => {} }) })
}
