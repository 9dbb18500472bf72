/**
 * The build stamp that lets check-dist skip a rebuild (scripts/dist-stamp.mjs): it matches only
 * while neither the sources nor dist/ changed since the build that wrote it.
 */
import { describe, expect, it } from '@jest/globals'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
// @ts-expect-error: a plain .mjs script without type declarations
const { STAMP_FILE, stampFor, stampMatches } = await import('../scripts/dist-stamp.mjs')

function checkout() {
  const root = mkdtempSync(join(tmpdir(), 'orun-stamp-'))
  const write = (file: string, text: string) => {
    mkdirSync(join(root, file, '..'), { recursive: true })
    writeFileSync(join(root, file), text)
  }
  write('src/run/main.ts', 'export const a = 1\n')
  write('package-lock.json', '{"lockfileVersion":3}\n')
  write('dist/run/index.js', 'var a = 1\n')
  const dist = join(root, 'dist')
  const stamp = () => writeFileSync(join(dist, STAMP_FILE), stampFor(dist, root))
  return { root, dist, write, stamp, matches: () => stampMatches(dist, root) as boolean }
}

describe('the build stamp of dist/', () => {
  it('matches right after the build that wrote it', () => {
    const c = checkout()
    expect(c.matches()).toBe(false)
    c.stamp()
    expect(c.matches()).toBe(true)
    rmSync(c.root, { recursive: true, force: true })
  })

  it('no longer matches after a change to src/, the lockfile, or dist/ by hand', () => {
    for (const [file, text] of [
      ['src/run/main.ts', 'export const a = 2\n'],
      ['src/run/new.ts', 'export {}\n'],
      ['package-lock.json', '{"lockfileVersion":3,"packages":{}}\n'],
      ['dist/run/index.js', 'var a = 2\n'],
      ['dist/run/extra.js', '\n']
    ]) {
      const c = checkout()
      c.stamp()
      c.write(file!, text!)
      expect([file, c.matches()]).toEqual([file, false])
      rmSync(c.root, { recursive: true, force: true })
    }
  })

  it('a broken stamp file never matches', () => {
    const c = checkout()
    writeFileSync(join(c.dist, STAMP_FILE), '{not json')
    expect(c.matches()).toBe(false)
    rmSync(c.root, { recursive: true, force: true })
  })
})
