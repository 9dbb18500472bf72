/**
 * One Node.js line everywhere: the actions run on node24 (action.yml `runs.using`), and
 * .node-version, package.json `engines` and @types/node name the same major version.
 */
import { describe, expect, it } from '@jest/globals'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import * as path from 'node:path'
import { parse } from 'yaml'
import { REPO_ROOT } from '../testing/fixtures.js'

const read = (file: string) => readFileSync(path.join(REPO_ROOT, file), 'utf8')

describe('the Node.js version', () => {
  it('is 24 for every action, .node-version, engines and @types/node', () => {
    // The root action and every sub-action folder (plan/, run/, and any added later).
    const actions = [
      'action.yml',
      ...readdirSync(REPO_ROOT, { withFileTypes: true })
        .filter(entry => entry.isDirectory() && entry.name !== 'node_modules')
        .map(entry => `${entry.name}/action.yml`)
        .filter(file => existsSync(path.join(REPO_ROOT, file)))
    ]
    expect(actions).toEqual(
      expect.arrayContaining([
        'action.yml',
        'plan/action.yml',
        'run/action.yml',
        'validate/action.yml'
      ])
    )
    for (const file of actions) {
      expect([file, parse(read(file)).runs.using]).toEqual([file, 'node24'])
    }
    expect(read('.node-version').trim()).toBe('24')
    const pkg = JSON.parse(read('package.json'))
    expect(pkg.engines.node).toBe('>=24')
    expect(pkg.devDependencies['@types/node']).toMatch(/^\^24\./)
  })
})
