/**
 * The plan hand-off through workflow artifacts. GitHub's artifact service is not
 * reachable here, so @actions/artifact is replaced by a typed fixture that keeps
 * uploads in memory; everything else is the real module.
 */
import { afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'

interface Stored {
  name: string
  files: Record<string, string>
  retentionDays?: number
}
const stored: Stored[] = []

class FakeArtifactClient {
  async uploadArtifact(
    name: string,
    files: string[],
    root: string,
    options?: { retentionDays?: number }
  ) {
    if (stored.some(a => a.name === name)) {
      throw new Error(`Conflict: an artifact with this name already exists on the workflow run`)
    }
    stored.push({
      name,
      files: Object.fromEntries(
        files.map(f => [f.slice(root.length + 1), readFileSync(f, 'utf8')])
      ),
      retentionDays: options?.retentionDays
    })
    return { id: stored.length, size: 1 }
  }
  async deleteArtifact(name: string) {
    const index = stored.findIndex(a => a.name === name)
    if (index < 0) throw new Error(`Artifact not found for name: ${name}`)
    stored.splice(index, 1)
    return { id: index + 1 }
  }
  async getArtifact(name: string) {
    const index = stored.findIndex(a => a.name === name)
    if (index < 0) throw new Error(`Artifact not found for name: ${name}`)
    return { artifact: { id: index + 1, name } }
  }
  async downloadArtifact(id: number, options?: { path?: string }) {
    const dir = options!.path!
    mkdirSync(dir, { recursive: true })
    for (const [file, text] of Object.entries(stored[id - 1].files))
      writeFileSync(join(dir, file), text)
    return { downloadPath: dir }
  }
}

jest.unstable_mockModule('@actions/artifact', () => ({ DefaultArtifactClient: FakeArtifactClient }))
const { uploadPlanArtifact, downloadPlanArtifact, defaultArtifactName, PLAN_ARTIFACT_FILE } =
  await import('../src/plan/handoff.js')
const { UserError } = await import('../src/common/errors.js')
const { run: planAction } = await import('../src/plan/main.js')
const { loadPlan } = await import('../src/run/plan-source.js')
const { SHARED_PLANS } = await import('../testing/fixtures.js')
const { parseFileCommands } = await import('../testing/action-process.js')
type RunInputs = import('../src/run/inputs.js').RunInputs

const planText = '{"metadata":{"checksum":"sha256-abc"},"jobs":[]}'
function planFile(text = planText): string {
  const file = join(mkdtempSync(join(tmpdir(), 'handoff-')), PLAN_ARTIFACT_FILE)
  writeFileSync(file, text)
  return file
}
const firstAttempt = { attempt: 1 }

beforeAll(() => {
  jest.spyOn(process.stdout, 'write').mockImplementation(() => true)
})
const actionEnv = [
  'ACTIONS_RUNTIME_TOKEN',
  'GITHUB_RUN_ID',
  'GITHUB_RUN_ATTEMPT',
  'GITHUB_OUTPUT',
  'GITHUB_STEP_SUMMARY',
  'RUNNER_TEMP',
  'INPUT_PLAN-FILE',
  'INPUT_ARTIFACT-NAME',
  'INPUT_RUN-ID',
  'INPUT_UPLOAD'
]
afterEach(() => {
  stored.length = 0
  for (const name of actionEnv) delete process.env[name]
})

/** Runs the plan action in this process, as attempt `attempt`, and returns its outputs. */
async function planJob(attempt: number, inputs: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'plan-job-'))
  Object.assign(process.env, {
    ACTIONS_RUNTIME_TOKEN: 'runtime-token',
    GITHUB_RUN_ID: '4242',
    GITHUB_RUN_ATTEMPT: String(attempt),
    GITHUB_OUTPUT: join(dir, 'output'),
    GITHUB_STEP_SUMMARY: join(dir, 'summary'),
    RUNNER_TEMP: dir,
    INPUT_UPLOAD: 'true'
  })
  writeFileSync(join(dir, 'output'), '')
  writeFileSync(join(dir, 'summary'), '')
  for (const [name, value] of Object.entries(inputs))
    process.env[`INPUT_${name.toUpperCase()}`] = value
  await planAction()
  return parseFileCommands(readFileSync(join(dir, 'output'), 'utf8'))
}

/** What the run action loads from the artifact the plan job named. */
function runJobPlan(outputs: Record<string, string>) {
  return loadPlan({ runId: outputs['run-id'], artifactName: outputs['artifact-name'] } as RunInputs)
}

describe('plan hand-off', () => {
  it('names the artifact after the run id, without characters artifact names refuse', () => {
    expect(defaultArtifactName('gha-1-2-0b673779a274')).toBe('orun-plan-gha-1-2-0b673779a274')
    expect(defaultArtifactName('my/run:1')).toBe('orun-plan-my-run-1')
  })

  it("uploads plan.json with the repository's retention and a runner downloads the same file", async () => {
    process.env.ACTIONS_RUNTIME_TOKEN = 'runtime-token'
    await uploadPlanArtifact(planFile(), 'orun-plan-x', firstAttempt)
    expect(stored).toEqual([
      { name: 'orun-plan-x', files: { 'plan.json': planText }, retentionDays: undefined }
    ])

    const downloaded = await downloadPlanArtifact('orun-plan-x', mkdtempSync(join(tmpdir(), 'dl-')))
    expect(basename(downloaded)).toBe('plan.json')
    expect(readFileSync(downloaded, 'utf8')).toBe(planText)
  })

  it('keeps the plan for the retention days asked for', async () => {
    process.env.ACTIONS_RUNTIME_TOKEN = 'runtime-token'
    await uploadPlanArtifact(planFile(), 'orun-plan-x', { attempt: 1, retentionDays: 7 })
    expect(stored.map(a => a.retentionDays)).toEqual([7])
  })

  it('explains a name two plan steps of one attempt use', async () => {
    process.env.ACTIONS_RUNTIME_TOKEN = 'runtime-token'
    await uploadPlanArtifact(planFile(), 'orun-plan-x', firstAttempt)
    const second = uploadPlanArtifact(planFile(), 'orun-plan-x', firstAttempt)
    await expect(second).rejects.toThrow(UserError)
    await expect(second).rejects.toThrow(
      /already exists in this workflow run.*Two plan steps.*'artifact-name'/
    )
  })

  it('replaces the plan an earlier attempt left under a fixed name when the plan job is re-run', async () => {
    process.env.ACTIONS_RUNTIME_TOKEN = 'runtime-token'
    await uploadPlanArtifact(planFile(), 'my-plan', firstAttempt)
    const rerunPlan = '{"metadata":{"checksum":"sha256-def"},"jobs":[]}'
    await uploadPlanArtifact(planFile(rerunPlan), 'my-plan', { attempt: 2 })

    expect(stored).toEqual([
      { name: 'my-plan', files: { 'plan.json': rerunPlan }, retentionDays: undefined }
    ])
    const downloaded = await downloadPlanArtifact('my-plan', mkdtempSync(join(tmpdir(), 'dl-')))
    expect(readFileSync(downloaded, 'utf8')).toBe(rerunPlan)
  })

  it('"Re-run all jobs" with a fixed artifact-name: the plan job replaces its plan and the run jobs load the new one', async () => {
    const first = await planJob(1, {
      'plan-file': join(SHARED_PLANS, 'failing-upstream.json'),
      'artifact-name': 'my-plan'
    })
    expect(first['artifact-name']).toBe('my-plan')
    expect((await runJobPlan(first)).id).toBe('1ee28a631e0d')

    const second = await planJob(2, {
      'plan-file': join(SHARED_PLANS, 'single.json'),
      'artifact-name': 'my-plan'
    })
    expect(second['artifact-name']).toBe('my-plan')
    expect(second['run-id']).toMatch(/^gha-4242-2-/)
    expect(stored.map(a => a.name)).toEqual(['my-plan'])
    expect((await runJobPlan(second)).id).toBe(second['plan-id'])
    expect(second['plan-id']).not.toBe('1ee28a631e0d')
  })

  it('a custom run-id names a run and an artifact per attempt, so a re-run of the plan job never clashes', async () => {
    const plan = join(SHARED_PLANS, 'failing-upstream.json')
    const first = await planJob(1, { 'plan-file': plan, 'run-id': 'deploy-4242' })
    const second = await planJob(2, { 'plan-file': plan, 'run-id': 'deploy-4242' })
    expect([first['run-id'], second['run-id']]).toEqual(['deploy-4242', 'deploy-4242-a2'])
    expect(stored.map(a => a.name)).toEqual(['orun-plan-deploy-4242', 'orun-plan-deploy-4242-a2'])
    expect((await runJobPlan(second)).id).toBe('1ee28a631e0d')
  })

  it('explains a missing artifact: the plan job must run first with upload', async () => {
    process.env.ACTIONS_RUNTIME_TOKEN = 'runtime-token'
    const missing = downloadPlanArtifact('orun-plan-nope', mkdtempSync(join(tmpdir(), 'dl-')))
    await expect(missing).rejects.toThrow(UserError)
    await expect(missing).rejects.toThrow(
      /No artifact named 'orun-plan-nope'.*needs: plan.*'plan-file'/
    )
  })

  it('refuses to use artifacts off a GitHub runner, saying what to do instead', async () => {
    delete process.env.ACTIONS_RUNTIME_TOKEN
    await expect(uploadPlanArtifact(planFile(), 'x', firstAttempt)).rejects.toThrow(
      /ACTIONS_RUNTIME_TOKEN.*'upload: false'/
    )
    await expect(downloadPlanArtifact('x', tmpdir())).rejects.toThrow(
      /ACTIONS_RUNTIME_TOKEN.*'plan-file'/
    )
    expect(stored).toEqual([])
  })
})
