/**
 * Run evidence on orun's recorded `orun run` outputs, 2.54 and 2.75, with and without colour
 * (__fixtures__/orun-run-output, written by testing/orun-standin/record-run-outputs.mjs): the
 * action's verdict must not depend on a line one of them lacks, such as 2.54's closing
 * `✓ Execution completed` block, which v2.75 no longer prints.
 */
import { describe, expect, test } from '@jest/globals'
import { readFileSync, readdirSync } from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { explainNonRun, ranToSuccess, readRunAccount } from '../src/run/run-evidence.js'

const DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '__fixtures__',
  'orun-run-output'
)
const JOB = 'api-edge.dev.deploy'

/** Each recorded case and why orun's account says the job did not run to success (or undefined). */
const CASES: Record<string, RegExp | undefined> = {
  success: undefined,
  skipped: /orun left it waiting because its dependencies are not completed/,
  'failed-no-failfast': /orun reports the job failed, yet exited 0/,
  filtered: /orun printed no account of the job at all/
}

interface Recorded {
  file: string
  version: '254' | '275'
  name: string
  colour: boolean
  stdout: string
  stderr: string
  exit: number
}

const recorded: Recorded[] = readdirSync(DIR)
  .sort()
  .map(file => {
    const match = /^orun(254|275)-(.+?)(-colour)?\.txt$/.exec(file)
    if (!match) throw new Error(`${file} is not named orun<254|275>-<case>[-colour].txt`)
    const text = readFileSync(path.join(DIR, file), 'utf8')
    const [, stdout, stderr, exit] = /^([\s\S]*)--- stderr\n([\s\S]*)--- exit (\d+)\n$/.exec(text)!
    return {
      file,
      version: match[1] as '254' | '275',
      name: match[2],
      colour: match[3] !== undefined,
      stdout,
      stderr,
      exit: Number(exit)
    }
  })

const verdict = (output: string) => {
  const account = readRunAccount(output, JOB)
  return {
    ran: ranToSuccess(account),
    why: explainNonRun(account, { jobId: JOB, cwd: '/nonexistent', extraArgs: [] })
  }
}

describe('run evidence on recorded orun 2.54 and 2.75 outputs', () => {
  test('every case is recorded for both versions, with and without colour, and nothing else', () => {
    const expected = Object.keys(CASES).flatMap(name =>
      ['254', '275'].flatMap(version => [
        `orun${version}-${name}.txt`,
        `orun${version}-${name}-colour.txt`
      ])
    )
    expect(recorded.map(r => r.file)).toEqual(expected.sort())
    for (const r of recorded) {
      // Every case exits 0: only orun's account tells them apart.
      expect({ file: r.file, exit: r.exit }).toEqual({ file: r.file, exit: 0 })
      expect({ file: r.file, coloured: r.stdout.includes('\x1b[') }).toEqual({
        file: r.file,
        coloured: r.colour && r.stdout !== ''
      })
    }
  })

  test.each(recorded.map(r => [r.file, r] as const))('%s', (_file, r) => {
    const { ran, why } = verdict(r.stdout + r.stderr)
    const expected = CASES[r.name]
    expect(ran).toBe(expected === undefined)
    if (expected === undefined) expect(why).toBeUndefined()
    else expect(why).toMatch(expected)
  })

  test("2.54's Execution block is in the 2.54 outputs only, and the verdict is the same without it", () => {
    for (const r of recorded) {
      const hasBlock = /Execution (completed|failed)/.test(r.stdout)
      expect({ file: r.file, hasBlock }).toEqual({
        file: r.file,
        hasBlock: r.version === '254' && r.name !== 'filtered'
      })
      const withoutBlock = r.stdout.replace(/\n[^\n]*Execution (completed|failed)[^]*$/, '\n')
      expect({ file: r.file, ...verdict(withoutBlock + r.stderr) }).toEqual({
        file: r.file,
        ...verdict(r.stdout + r.stderr)
      })
    }
  })

  test('the same case reads the same in both versions, with and without colour', () => {
    for (const name of Object.keys(CASES)) {
      const verdicts = recorded.filter(r => r.name === name).map(r => verdict(r.stdout).ran)
      expect(new Set(verdicts).size).toBe(1)
    }
  })
})
