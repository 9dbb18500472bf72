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

const planText = '{"metadata":{"checksum":"sha256-abc"},"jobs":[]}'
function planFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'handoff-')), PLAN_ARTIFACT_FILE)
  writeFileSync(file, planText)
  return file
}

beforeAll(() => {
  jest.spyOn(process.stdout, 'write').mockImplementation(() => true)
})
afterEach(() => {
  stored.length = 0
  delete process.env.ACTIONS_RUNTIME_TOKEN
})

describe('plan hand-off', () => {
  it('names the artifact after the run id, without characters artifact names refuse', () => {
    expect(defaultArtifactName('gha-1-2-0b673779a274')).toBe('orun-plan-gha-1-2-0b673779a274')
    expect(defaultArtifactName('my/run:1')).toBe('orun-plan-my-run-1')
  })

  it('uploads plan.json for one day and a runner downloads the same file', async () => {
    process.env.ACTIONS_RUNTIME_TOKEN = 'runtime-token'
    await uploadPlanArtifact(planFile(), 'orun-plan-x')
    expect(stored).toEqual([
      { name: 'orun-plan-x', files: { 'plan.json': planText }, retentionDays: 1 }
    ])

    const downloaded = await downloadPlanArtifact('orun-plan-x', mkdtempSync(join(tmpdir(), 'dl-')))
    expect(basename(downloaded)).toBe('plan.json')
    expect(readFileSync(downloaded, 'utf8')).toBe(planText)
  })

  it('explains a name already used in this workflow run', async () => {
    process.env.ACTIONS_RUNTIME_TOKEN = 'runtime-token'
    await uploadPlanArtifact(planFile(), 'orun-plan-x')
    const second = uploadPlanArtifact(planFile(), 'orun-plan-x')
    await expect(second).rejects.toThrow(UserError)
    await expect(second).rejects.toThrow(/already exists in this workflow run.*'artifact-name'/)
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
    await expect(uploadPlanArtifact(planFile(), 'x')).rejects.toThrow(
      /ACTIONS_RUNTIME_TOKEN.*'upload: false'/
    )
    await expect(downloadPlanArtifact('x', tmpdir())).rejects.toThrow(
      /ACTIONS_RUNTIME_TOKEN.*'plan-file'/
    )
    expect(stored).toEqual([])
  })
})
