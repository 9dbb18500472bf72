/**
 * The job's own ::add-mask:: reaches GitHub's log although orun prints step output
 * inside ::stop-commands:: blocks: the relay re-prints each mask outside the block,
 * before it. Read back the way the runner reads its stdout (testing/workflow-commands.ts).
 */
import { describe, expect, it } from '@jest/globals'
import { MaskRelay } from '../src/run/mask-relay.js'
import { effectiveCommands } from '../testing/workflow-commands.js'

const SECRET = 'relay-secret-4711'
const TOKEN = 'orun-stop-solo@dev.smoke'

/** A step block as orun prints it in GitHub Actions mode (one write after the step). */
function stepBlock(step: string, output: string): string {
  return `::group::✓  01 ${step}  0.1s\n::stop-commands::${TOKEN}\n${output}\n::${TOKEN}::\n::endgroup::\n`
}

const ORUN_OUTPUT =
  '\n▶ solo\n  job-id      solo@dev.smoke\n' +
  stepBlock('login', `::add-mask::${SECRET}\nlogged in with ${SECRET}`) +
  stepBlock('use', `using ${SECRET} again`) +
  '\n✓ Done in 0.3s\n  1 succeeded\n'

function relayed(chunks: string[], maxHeld?: number) {
  let out = ''
  const own: string[] = []
  const relay = new MaskRelay(
    text => (out += text),
    line => own.push(line),
    maxHeld
  )
  for (const chunk of chunks) relay.push(chunk)
  relay.end()
  return { out, own }
}

/** Where GitHub's log first shows the value in clear: before this, the mask must be in force. */
const firstPrinted = (out: string) => out.indexOf(`with ${SECRET}`)

describe('MaskRelay', () => {
  it("orun's output as it is: the runner never sees the step's mask (the premise)", () => {
    expect(effectiveCommands(ORUN_OUTPUT).filter(c => c.name === 'add-mask')).toEqual([])
  })

  it.each([
    ['one write', [ORUN_OUTPUT]],
    ['one character at a time', [...ORUN_OUTPUT]],
    ['pipe-sized pieces', ORUN_OUTPUT.match(/[^]{1,7}/g)!]
  ])('prints the mask outside the block, before the value shows (%s)', (_name, chunks) => {
    const { out, own } = relayed(chunks)
    const masks = effectiveCommands(out).filter(c => c.name === 'add-mask')
    expect(masks.map(m => m.data)).toEqual([SECRET])
    expect(masks[0].offset).toBeLessThan(firstPrinted(out))
    // Nothing else changes: the output is orun's, plus the one mask line.
    expect(out.replace(`::add-mask::${SECRET}\n`, '')).toBe(ORUN_OUTPUT)
    // orun's own lines, without step output, for its account of the run.
    expect(own).toContain('✓ Done in 0.3s')
    expect(own.some(line => line.includes(SECRET))).toBe(false)
  })

  it('passes on a block over the bound as it comes, and masks after it ends', () => {
    const big = stepBlock(
      'big',
      `${'x'.repeat(200)}\n::add-mask::${SECRET}\nlogged in with ${SECRET}`
    )
    const { out } = relayed([big, stepBlock('use', `using ${SECRET} again`)], 100)
    const masks = effectiveCommands(out).filter(c => c.name === 'add-mask')
    expect(masks.map(m => m.data)).toEqual([SECRET])
    expect(masks[0].offset).toBeLessThan(out.indexOf(`using ${SECRET}`))
  })

  it('closes a block orun left open when it was killed, so later commands work again', () => {
    const { out } = relayed([`::stop-commands::${TOKEN}\n::add-mask::${SECRET}\npartial ${SECRET}`])
    const commands = effectiveCommands(`${out}::warning::after\n`)
    expect(commands.map(c => c.name)).toEqual(['add-mask', 'stop-commands', 'warning'])
  })

  it('passes an unended line outside a block on at once', () => {
    let out = ''
    const relay = new MaskRelay(text => (out += text))
    relay.push('progress 10%')
    expect(out).toBe('progress 10%')
    relay.push('\n::stop-com')
    expect(out).toBe('progress 10%\n')
  })
})
