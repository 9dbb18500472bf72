/**
 * The validate action's run() in-process with the typed @actions/core fixture and the stand-in
 * orun, whose validation errors use the texts of orun's own validator (yaml.v3 line numbers).
 */
import { afterAll, beforeEach, describe, expect, it, jest } from '@jest/globals'
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import * as core from '../__fixtures__/core.js'
import { REPO_ROOT, STANDIN_DIR } from '../testing/action-process.js'
import { Scratch } from '../testing/scratch.js'

jest.unstable_mockModule('@actions/core', () => core)
const { run } = await import('../src/validate/main.js')
const { UserError } = await import('../src/common/errors.js')

const scratch = new Scratch(['GITHUB_WORKSPACE', 'RUNNER_TEMP'])
let workspace: string

afterAll(() => scratch.cleanUp())

beforeEach(() => {
  core.reset()
  workspace = scratch.tempDir('orun-validate-ws-')
  process.env.GITHUB_WORKSPACE = workspace
  process.env.RUNNER_TEMP = scratch.tempDir('orun-validate-tmp-')
  Object.assign(core.inputs, {
    'working-directory': 'infra',
    'orun-path': path.join(STANDIN_DIR, 'orun')
  })
  mkdirSync(path.join(workspace, 'infra'))
})

const INVALID = [
  'name: broken', //  1
  'environments: [dev]', //  2
  'components:', //  3
  '  - name: api', //  4
  '    composition: helm', //  5
  "    run: 'true'", //  6
  '    dependsOn: foundation', //  7: a string, not a list
  '  - name: web', //  8
  '    composition: helm', //  9
  "    run: 'true'", // 10
  '    env: [PORT]' // 11: a list, not a mapping
].join('\n')

/** The stand-in as an orun without `validate` (ORUN_STANDIN_NO_VALIDATE=1), for the child it starts. */
function orunWithoutValidate(): string {
  const file = path.join(scratch.tempDir('orun-no-validate-'), 'orun')
  writeFileSync(
    file,
    `#!/bin/sh\nORUN_STANDIN_NO_VALIDATE=1 exec '${path.join(STANDIN_DIR, 'orun')}' "$@"\n`,
    { mode: 0o755 }
  )
  return file
}

async function failure(): Promise<string> {
  try {
    await run()
  } catch (error) {
    expect(error).toBeInstanceOf(UserError)
    return (error as Error).message
  }
  throw new Error('run() did not fail')
}

const annotations = () =>
  core.error.mock.calls.map(([message, properties]) => ({
    message: String(message),
    ...properties
  }))

describe('validate action', () => {
  it('a valid intent: valid true, no annotation, no failure', async () => {
    copyFileSync(
      path.join(REPO_ROOT, 'demo', 'intent', 'intent.yaml'),
      path.join(workspace, 'infra', 'intent.yaml')
    )
    await run()
    expect(core.outputs).toMatchObject({ valid: 'true', errors: '[]' })
    expect(core.error).not.toHaveBeenCalled()
    expect(core.info).toHaveBeenCalledWith('infra/intent.yaml is valid.')
  })

  it.each([
    ['with orun validate', false],
    ['with an orun without validate (a compile instead)', true]
  ])(
    'an invalid intent, %s: one annotation per error on the line orun names, valid false, the step fails',
    async (_case, fallback) => {
      if (fallback) core.inputs['orun-path'] = orunWithoutValidate()
      writeFileSync(path.join(workspace, 'infra', 'intent.yaml'), INVALID)
      const message = await failure()
      expect(message).toBe(
        `The intent in ${path.join(workspace, 'infra')} is not valid: 2 error(s), annotated on the lines orun names. Fix intent.yaml and push again.`
      )
      const prefix =
        'failed to load intent: failed to parse intent YAML: yaml: unmarshal errors: line'
      expect(annotations()).toEqual([
        {
          message: `${prefix} 7: cannot unmarshal !!str \`foundation\` into []string`,
          title: 'orun validate',
          file: 'infra/intent.yaml',
          startLine: 7
        },
        {
          message: `${prefix} 11: cannot unmarshal !!seq into map[string]string`,
          title: 'orun validate',
          file: 'infra/intent.yaml',
          startLine: 11
        }
      ])
      expect(core.outputs.valid).toBe('false')
      expect(JSON.parse(core.outputs.errors)).toEqual([
        expect.objectContaining({ file: 'infra/intent.yaml', line: 7 }),
        expect.objectContaining({ file: 'infra/intent.yaml', line: 11 })
      ])
      expect(core.info.mock.calls.map(([line]) => line)).toEqual(
        fallback
          ? [
              "orun 2.54.0 has no 'validate' command: the intent was compiled instead, and the plan thrown away."
            ]
          : []
      )
    }
  )

  it('a YAML syntax error is annotated on its line', async () => {
    writeFileSync(
      path.join(workspace, 'infra', 'intent.yaml'),
      'name: x\nenvironments: [dev]\ncomponents:\n  - name: a\n   composition: t\n'
    )
    await failure()
    expect(annotations()).toEqual([
      expect.objectContaining({ file: 'infra/intent.yaml', startLine: 5 })
    ])
    expect(annotations()[0].message).toMatch(/^failed to load intent: .* yaml: line 5: /)
  })

  it('an error that names no line is annotated on the intent file', async () => {
    writeFileSync(
      path.join(workspace, 'infra', 'intent.yaml'),
      "environments: [dev]\ncomponents:\n  - {name: a, composition: t, run: 'true', dependsOn: [b]}\n"
    )
    await failure()
    expect(annotations()).toEqual([
      {
        message: 'normalization failed: component "a" depends on unknown component "b"',
        title: 'orun validate',
        file: 'infra/intent.yaml'
      }
    ])
  })

  it('a working directory without intent.yaml is named before orun runs', async () => {
    expect(await failure()).toMatch(
      /^There is no intent\.yaml in .*infra\. Check out the repository/
    )
    expect(core.outputs.valid).toBeUndefined()
  })
})
