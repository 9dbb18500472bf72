/**
 * The validate action's bundle (dist/validate) as GitHub runs it: annotations as workflow
 * commands on the lines orun names, the valid output, and the step's exit code. run() is tested
 * in-process in validate-main.test.ts.
 */
import { afterAll, describe, expect, test } from '@jest/globals'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { STANDIN_DIR, runActionProcess } from '../testing/action-process.js'

const cwd = mkdtempSync(path.join(tmpdir(), 'orun-validate-action-'))
afterAll(() => rmSync(cwd, { recursive: true, force: true }))

describe('validate action bundle', () => {
  test('an invalid intent: one ::error per error on its file and line, valid false, exit 1; a valid one passes', async () => {
    const inputs = { 'orun-path': STANDIN_DIR }
    writeFileSync(
      path.join(cwd, 'intent.yaml'),
      "environments: [dev]\ncomponents:\n  - name: api\n    composition: helm\n    run: 'true'\n    dependsOn: web\n"
    )
    const invalid = await runActionProcess('dist/validate/index.js', { inputs, cwd })
    expect(invalid.exitCode).toBe(1)
    expect(invalid.outputs.valid).toBe('false')
    expect(invalid.stdout.split('\n').filter(line => line.startsWith('::error'))).toEqual([
      '::error title=orun validate,file=intent.yaml,line=6::failed to load intent: failed to parse intent YAML: yaml: unmarshal errors: line 6: cannot unmarshal !!str `web` into []string',
      `::error::The intent in ${cwd} is not valid: 1 error(s), annotated on the lines orun names. Fix intent.yaml and push again.`
    ])

    writeFileSync(
      path.join(cwd, 'intent.yaml'),
      "environments: [dev]\ncomponents:\n  - name: api\n    composition: helm\n    run: 'true'\n"
    )
    const valid = await runActionProcess('dist/validate/index.js', { inputs, cwd })
    expect(valid.exitCode).toBe(0)
    expect(valid.outputs).toMatchObject({ valid: 'true', errors: '[]' })
  })
})
