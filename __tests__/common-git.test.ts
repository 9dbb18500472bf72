/**
 * The plan action's questions to git, against real repositories made here: a full
 * one, a shallow clone of it, and a folder that is no repository.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { hasMergeBase, isShallowRepository } from '../src/common/git.js'

let root: string
let full: string
let shallow: string
let plain: string

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, {
    cwd,
    stdio: 'pipe',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'test',
      GIT_AUTHOR_EMAIL: 'test@example.com',
      GIT_COMMITTER_NAME: 'test',
      GIT_COMMITTER_EMAIL: 'test@example.com'
    }
  })

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'orun-git-'))
  full = path.join(root, 'full')
  shallow = path.join(root, 'shallow')
  plain = path.join(root, 'plain')
  mkdirSync(full)
  mkdirSync(plain)
  git(full, 'init', '-q', '-b', 'main')
  for (const n of [1, 2, 3]) {
    writeFileSync(path.join(full, `f${n}.txt`), `${n}\n`)
    git(full, 'add', '.')
    git(full, 'commit', '-q', '-m', `commit ${n}`)
  }
  git(root, 'clone', '-q', '--depth', '1', `file://${full}`, shallow)
})

afterAll(() => rmSync(root, { recursive: true, force: true }))

describe('isShallowRepository', () => {
  it('is false for a full history, true for a shallow clone, undefined outside git', async () => {
    await expect(isShallowRepository(full)).resolves.toBe(false)
    await expect(isShallowRepository(shallow)).resolves.toBe(true)
    await expect(isShallowRepository(plain)).resolves.toBeUndefined()
  })
})

describe('hasMergeBase', () => {
  it('finds the common commit only where the history holds both refs', async () => {
    await expect(hasMergeBase(full, 'HEAD~2', 'HEAD')).resolves.toBe(true)
    await expect(hasMergeBase(shallow, 'HEAD~2', 'HEAD')).resolves.toBe(false)
    await expect(hasMergeBase(full, 'no-such-ref', 'HEAD')).resolves.toBe(false)
    await expect(hasMergeBase(plain, 'HEAD~1', 'HEAD')).resolves.toBe(false)
  })
})
