import { describe, expect, test } from '@jest/globals'
import { readFileSync, readdirSync } from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { UserError } from '../src/common/errors.js'
import { toBackendPlan } from '../src/backend/plan.js'
import {
  ancestorsOf,
  checkNameOf,
  depthOf,
  matrixEntries,
  secretKeyOf,
  secretNeedsOf,
  parsePlan,
  planIdFromChecksum,
  selectJobs,
  singleJobPlan,
  type Plan,
  type PlanFile,
  type PlanJob
} from '../src/plan/model.js'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
// The shared fixtures live in shared/ beside the clone, in CI as on a developer machine.
const FIXTURES = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'plans')

const fixtureText = (name: string) => readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8')
const loadFixture = (name: string) => parsePlan(fixtureText(name), `${name}.json`)

/**
 * orun254-matrix as orun 2.72.1+ writes it: no generatedAt (the checksum repeats from compile to
 * compile) and, from 2.71, a dense 0-based index on every job, in the file's order.
 */
function orun275Text(): string {
  const plan = JSON.parse(fixtureText('orun254-matrix'))
  delete plan.metadata.generatedAt
  plan.jobs = plan.jobs.map(({ id, ...job }: PlanJob, index: number) => ({ id, index, ...job }))
  return JSON.stringify(plan)
}

/** Parses and returns the thrown error, failing the test if nothing (or a non-UserError) is thrown. */
function parseError(text: string, source: string): UserError {
  try {
    parsePlan(text, source)
  } catch (error) {
    expect(error).toBeInstanceOf(UserError)
    return error as UserError
  }
  throw new Error(`parsePlan(${source}) did not throw`)
}

/** Every job appears once and after all of its dependencies. */
function expectTopological(plan: Plan): void {
  const seen = new Set<string>()
  for (const job of plan.order) {
    for (const dep of job.dependsOn ?? []) expect(seen.has(dep)).toBe(true)
    expect(seen.has(job.id)).toBe(false)
    seen.add(job.id)
  }
  expect(seen.size).toBe(plan.byId.size)
}

/** mulberry32: a tiny seeded PRNG, so a failing random case can be replayed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function shuffled<T>(items: T[], random: () => number): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

/** A random DAG: job k may only depend on jobs created before it; the file lists them shuffled. */
function randomDagPlan(random: () => number, size: number): PlanFile {
  const jobs: PlanJob[] = []
  for (let k = 0; k < size; k++) {
    const dependsOn = jobs.filter(() => random() < 0.15).map(job => job.id)
    const env = ['dev', 'qa', 'prod'][Math.floor(random() * 3)]
    jobs.push({ id: `c${k}@${env}.smoke`, component: `c${k}`, environment: env, dependsOn })
  }
  return { metadata: { checksum: `sha256-${'ab'.repeat(32)}` }, jobs: shuffled(jobs, random) }
}

/**
 * The order parsePlan promises, computed the slow way: repeatedly take the first job in file
 * order whose dependencies are all placed.
 */
function fileStableOrder(jobs: PlanJob[]): string[] {
  const placed = new Set<string>()
  const order: string[] = []
  while (order.length < jobs.length) {
    const next = jobs.find(
      job => !placed.has(job.id) && (job.dependsOn ?? []).every(dep => placed.has(dep))
    )!
    placed.add(next.id)
    order.push(next.id)
  }
  return order
}

/** Each invalid fixture, and what its message must name. */
const invalidFixtures: Record<string, RegExp[]> = {
  'invalid-cycle': [
    /dependency cycle/,
    /a@dev\.smoke → b@dev\.smoke → c@dev\.smoke → a@dev\.smoke/
  ],
  'invalid-dangling-dep': [/"a@dev\.smoke"/, /"ghost@dev\.smoke"/, /not in the plan/],
  'invalid-duplicate-id': [/two jobs with the id "a@dev\.smoke"/],
  'invalid-no-checksum': [/metadata\.checksum/],
  'invalid-no-jobs-field': [/no "jobs" array/],
  'invalid-not-json': [/not valid JSON/]
}

describe('planIdFromChecksum', () => {
  test('drops the sha256- prefix and keeps the first 12 characters', () => {
    expect(
      planIdFromChecksum('sha256-905f6efbdd89f388a95d6fcfb113155f64fce49a4d94c309427046b10034de8d')
    ).toBe('905f6efbdd89')
  })

  test('a checksum without the prefix is cut as is', () => {
    expect(planIdFromChecksum('0b673779a274f2c1aa')).toBe('0b673779a274')
  })

  test('only a leading prefix is removed', () => {
    expect(planIdFromChecksum('abcsha256-0123456789')).toBe('abcsha256-01')
  })
})

describe('parsePlan on the valid fixtures', () => {
  test('remote-state-matrix: 6 jobs in topological order, plan id 905f6efbdd89', () => {
    const plan = loadFixture('remote-state-matrix')
    expect(plan.id).toBe('905f6efbdd89')
    expect(plan.order).toHaveLength(6)
    expectTopological(plan)
    expect(plan.order.map(job => job.id)).toEqual([
      'foundation@dev.smoke',
      'api@dev.smoke',
      'web@dev.smoke',
      'foundation@stage.smoke',
      'api@stage.smoke',
      'web@stage.smoke'
    ])
    expect(plan.dependents.get('foundation@dev.smoke')).toEqual(['api@dev.smoke'])
    expect(plan.dependents.get('web@stage.smoke')).toEqual([])
    expect(plan.byId.get('api@stage.smoke')?.component).toBe('api')
  })

  test('wide-deep: 40 jobs, every dependency before its dependent', () => {
    const plan = loadFixture('wide-deep')
    expect(plan.id).toBe('bf1ab8bbf867')
    expect(plan.order).toHaveLength(40)
    expectTopological(plan)
    // Cross-environment promotion edges (api@qa waits for api@dev) are kept.
    expect(plan.dependents.get('api@dev.smoke')).toContain('api@qa.smoke')
    expect(plan.dependents.get('net@dev.smoke')).toHaveLength(4)
  })

  test('single: one job, no dependencies', () => {
    const plan = loadFixture('single')
    expect(plan.id).toBe('5e0143d6b3b9')
    expect(plan.order.map(job => job.id)).toEqual(['solo@dev.smoke'])
    expect(plan.dependents.get('solo@dev.smoke')).toEqual([])
  })

  test('failing-upstream: a chain of three', () => {
    const plan = loadFixture('failing-upstream')
    expect(plan.id).toBe('1ee28a631e0d')
    expect(plan.order.map(job => job.id)).toEqual([
      'foundation@dev.smoke',
      'api@dev.smoke',
      'web@dev.smoke'
    ])
  })

  test('empty: zero jobs is a plan, not an error', () => {
    const plan = loadFixture('empty')
    expect(plan.id).toBe('c4427eabb0d6')
    expect(plan.order).toEqual([])
    expect(plan.byId.size).toBe(0)
    expect(matrixEntries(plan)).toEqual([])
  })

  test('orun254-matrix (orun.io/v1): dotted ids, dependsOn omitted on roots, topological order', () => {
    const plan = loadFixture('orun254-matrix')
    expect(plan.id).toBe('ba97a4ad4356')
    expect(plan.order.map(job => job.id)).toEqual([
      'foundation.dev.plan-apply',
      'api-edge.dev.deploy',
      'web-console.dev.deploy',
      'foundation.stage.plan-apply',
      'api-edge.stage.deploy',
      'web-console.stage.deploy'
    ])
    expect(plan.byId.get('foundation.dev.plan-apply')!.dependsOn).toBeUndefined()
    expect(plan.dependents.get('foundation.dev.plan-apply')).toEqual(['api-edge.dev.deploy'])
    expect(plan.byId.get('api-edge.dev.deploy')).toMatchObject({
      component: 'api-edge',
      environment: 'dev'
    })
  })

  test('orun254-secret-refs: one job with a required and an optional secret', () => {
    const plan = loadFixture('orun254-secret-refs')
    expect(plan.id).toBe('cf0230dd2d24')
    expect(secretNeedsOf(plan.byId.get('db.stage.migrate')!)).toEqual([
      {
        asEnv: 'DATABASE_URL',
        ref: 'secret://stage/db/DATABASE_URL',
        optional: false,
        overrideEnv: 'ORUN_SECRET_DATABASE_URL'
      },
      {
        asEnv: 'SENTRY_DSN',
        ref: 'secret://stage/db/SENTRY_DSN',
        optional: true,
        overrideEnv: 'ORUN_SECRET_SENTRY_DSN'
      }
    ])
  })

  test('every fixture is covered by this file', () => {
    const covered = [
      'empty',
      'failing-upstream',
      'orun254-matrix',
      'orun254-secret-refs',
      'remote-state-matrix',
      'single',
      'wide-deep',
      ...Object.keys(invalidFixtures)
    ]
    const present = readdirSync(FIXTURES)
      .filter(name => name.endsWith('.json'))
      .map(name => name.replace(/\.json$/, ''))
    expect(present.sort()).toEqual(covered.sort())
  })
})

describe('parsePlan on the invalid fixtures', () => {
  test.each(Object.entries(invalidFixtures))(
    '%s: a one-line UserError naming the problem, the file and the fix',
    (name, patterns) => {
      const error = parseError(fixtureText(name), `fixtures/${name}.json`)
      expect(error.message).not.toContain('\n')
      expect(error.message).toContain(`fixtures/${name}.json`)
      for (const pattern of patterns) expect(error.message).toMatch(pattern)
      // Actionable: every message says what to change.
      expect(error.message).toMatch(/orun plan|intent\.yaml|re-compile/i)
    }
  )

  test('the cycle named for invalid-cycle is a real cycle of the fixture', () => {
    const file = JSON.parse(fixtureText('invalid-cycle')) as PlanFile
    const error = parseError(fixtureText('invalid-cycle'), 'cycle.json')
    expectRealCycle(error.message, file.jobs)
  })
})

/** The message's `x → y → ... → x` must be a loop in which each job depends on the one before it. */
function expectRealCycle(message: string, jobs: PlanJob[]): void {
  const match = /cycle: (.+?) \(/.exec(message)
  expect(match).not.toBeNull()
  const names = match![1].split(' → ')
  expect(names.length).toBeGreaterThanOrEqual(2)
  expect(names[names.length - 1]).toBe(names[0])
  expect(new Set(names.slice(0, -1)).size).toBe(names.length - 1)
  const byId = new Map(jobs.map(job => [job.id, job]))
  for (let i = 1; i < names.length; i++) {
    expect(byId.get(names[i])?.dependsOn).toContain(names[i - 1])
  }
}

describe('parsePlan on other malformed plans', () => {
  const checksum = { checksum: 'sha256-0123456789abcdef' }

  test('a top-level array is not a plan', () => {
    expect(parseError('[]', 'p.json').message).toMatch(/not a JSON object/)
  })

  test('a job without an id is named by its position', () => {
    const text = JSON.stringify({ metadata: checksum, jobs: [{ id: 'a' }, { name: 'x' }] })
    expect(parseError(text, 'p.json').message).toMatch(/job #2 has no id/)
  })

  test('a job id of only whitespace is no id', () => {
    for (const id of ['   ', '\t', ' \n ']) {
      const text = JSON.stringify({ metadata: checksum, jobs: [{ id: 'a' }, { id }] })
      expect(parseError(text, 'p.json').message).toBe(
        'Plan file p.json: job #2 has no id. Re-compile it with `orun plan`, or check the plan-file input.'
      )
    }
  })

  test('dependsOn must be a list of ids', () => {
    const text = JSON.stringify({ metadata: checksum, jobs: [{ id: 'a', dependsOn: 'b' }] })
    expect(parseError(text, 'p.json').message).toMatch(/job "a" has a dependsOn that is not a list/)
  })

  test('a job depending on itself is a cycle of one', () => {
    const text = JSON.stringify({ metadata: checksum, jobs: [{ id: 'a', dependsOn: ['a'] }] })
    expect(parseError(text, 'p.json').message).toMatch(/cycle: a → a \(/)
  })

  test('jobs downstream of a cycle are not named as part of it', () => {
    const jobs: PlanJob[] = [
      { id: 'x', dependsOn: ['q'] },
      { id: 'p', dependsOn: [] },
      { id: 'q', dependsOn: ['r', 'p'] },
      { id: 'r', dependsOn: ['q'] }
    ]
    const message = parseError(JSON.stringify({ metadata: checksum, jobs }), 'p.json').message
    expect(message).toMatch(/cycle: q → r → q \(/)
    expectRealCycle(message, jobs)
  })

  test('random plans with a cycle added name a real cycle of the plan', () => {
    const random = seededRandom(20261120)
    for (let round = 0; round < 50; round++) {
      const file = randomDagPlan(random, 5 + Math.floor(random() * 30))
      // Close a loop: an early job (in creation order) now waits for a later one that reaches it.
      const byId = new Map(file.jobs.map(job => [job.id, job]))
      const withDeps = file.jobs.filter(job => job.dependsOn!.length)
      if (!withDeps.length) continue
      const tail = withDeps[Math.floor(random() * withDeps.length)]
      const head = byId.get(tail.dependsOn![0])!
      head.dependsOn = [...head.dependsOn!, tail.id]
      const message = parseError(JSON.stringify(file), 'random.json').message
      expect(message).not.toContain('\n')
      expectRealCycle(message, file.jobs)
    }
  })
})

describe('topological order on random DAGs', () => {
  test('dependencies first, stable with respect to file order, dependents inverted', () => {
    const random = seededRandom(42)
    for (let round = 0; round < 200; round++) {
      const file = randomDagPlan(random, 1 + Math.floor(random() * 60))
      const plan = parsePlan(JSON.stringify(file), 'random.json')
      expectTopological(plan)
      expect(plan.order.map(job => job.id)).toEqual(fileStableOrder(file.jobs))
      for (const job of file.jobs) {
        const expected = file.jobs
          .filter(other => other.dependsOn!.includes(job.id))
          .map(other => other.id)
        expect([...plan.dependents.get(job.id)!].sort()).toEqual(expected.sort())
      }
    }
  })

  test('a file already in topological order keeps its order', () => {
    const random = seededRandom(7)
    const file = randomDagPlan(random, 40)
    const sorted = parsePlan(JSON.stringify(file), 'a.json').order
    const again = parsePlan(JSON.stringify({ ...file, jobs: sorted }), 'b.json')
    expect(again.order.map(job => job.id)).toEqual(sorted.map(job => job.id))
  })
})

describe('matrixEntries', () => {
  test('older plan: one {job, env, component, name, runs-on} per job, in topological order', () => {
    const plan = loadFixture('remote-state-matrix')
    const entries = matrixEntries(plan)
    expect(entries.map(entry => entry.job)).toEqual(plan.order.map(job => job.id))
    expect(entries[0]).toEqual({
      job: 'foundation@dev.smoke',
      env: 'dev',
      component: 'foundation',
      name: 'foundation · dev · smoke',
      'runs-on': ''
    })
    expect(Object.keys(entries[0]).sort()).toEqual(['component', 'env', 'job', 'name', 'runs-on'])
  })

  test("orun 2.54 plan: name is the plan's checkName, runs-on its runsOn", () => {
    const entries = matrixEntries(loadFixture('orun254-matrix'))
    expect(entries[1]).toEqual({
      job: 'api-edge.dev.deploy',
      env: 'dev',
      component: 'api-edge',
      name: 'api-edge · dev · Deploy',
      'runs-on': 'ubuntu-latest'
    })
  })

  test("orun 2.75 plan (index, no generatedAt): each entry carries orun's index; older plans have none", () => {
    const plan = parsePlan(orun275Text(), 'orun275.json')
    const entries = matrixEntries(plan)
    expect(entries.map(entry => [entry.job, entry.index])).toEqual(
      plan.order.map(job => [job.id, job.index])
    )
    expect(entries.map(entry => entry.index).sort((a, b) => a! - b!)).toEqual(
      plan.order.map((_, index) => index)
    )
    expect(matrixEntries(loadFixture('orun254-matrix')).some(entry => 'index' in entry)).toBe(false)
  })

  test.each([-1, 1.5, '0', null])('an index of %p is refused, naming the job', index => {
    const plan = JSON.parse(orun275Text())
    plan.jobs[1].index = index
    expect(parseError(JSON.stringify(plan), 'p.json').message).toMatch(
      /^Plan file p\.json: job api-edge\.dev\.deploy has an index that is not a whole number/
    )
  })

  test('missing fields become empty strings, never undefined; the name falls back to the id', () => {
    const plan = parsePlan(
      JSON.stringify({ metadata: { checksum: 'sha256-1234567890abcd' }, jobs: [{ id: 'bare' }] }),
      'p.json'
    )
    expect(matrixEntries(plan)).toEqual([
      { job: 'bare', env: '', component: '', name: 'bare', 'runs-on': '' }
    ])
  })
})

describe('checkNameOf', () => {
  test('checkName wins; else component · env · displayName or name; never parsed from the id', () => {
    expect(checkNameOf({ id: 'x', checkName: 'api · dev · Deploy', component: 'other' })).toBe(
      'api · dev · Deploy'
    )
    expect(
      checkNameOf({
        id: 'a.b.c',
        component: 'api',
        environment: 'dev',
        displayName: 'Deploy',
        name: 'deploy'
      })
    ).toBe('api · dev · Deploy')
    expect(checkNameOf({ id: 'a@b.c', component: 'api', environment: 'dev', name: 'smoke' })).toBe(
      'api · dev · smoke'
    )
    // Missing fields: the id as is, not its parts.
    expect(checkNameOf({ id: 'api@dev.smoke', name: 'smoke' })).toBe('api@dev.smoke')
    expect(checkNameOf({ id: 'api.dev.smoke', component: 'api', environment: 'dev' })).toBe(
      'api.dev.smoke'
    )
    expect(
      checkNameOf({ id: 'j', checkName: '  ', component: 'c', environment: 'e', name: 'n' })
    ).toBe('c · e · n')
  })
})

describe('secret refs', () => {
  test.each([
    ['secret://DATABASE_URL', 'DATABASE_URL'],
    ['secret://stage/db/DATABASE_URL', 'DATABASE_URL'],
    ['secret://acme/env:prod/component:api/API_KEY@3', 'API_KEY'],
    ['secret://ws/my.key-1', 'my.key-1'],
    ['secret://env:prod/1BAD', undefined],
    ['secret://env:prod/KEY@latest', undefined],
    ['config://env:prod/KEY', undefined],
    ['DATABASE_URL', undefined]
  ])('the key of %s is %s', (ref, key) => {
    expect(secretKeyOf(ref)).toBe(key)
  })

  test('a job without secretRefs needs nothing; malformed entries are skipped', () => {
    expect(secretNeedsOf({ id: 'a' })).toEqual([])
    const job: PlanJob = {
      id: 'a',
      secretRefs: [
        { asEnv: 'TOKEN', ref: 'not-a-ref' },
        { ref: 'secret://X' } as never,
        { asEnv: 'OK', ref: 'secret://X', optional: true }
      ]
    }
    expect(secretNeedsOf(job)).toEqual([
      { asEnv: 'TOKEN', ref: 'not-a-ref', optional: false, overrideEnv: undefined },
      { asEnv: 'OK', ref: 'secret://X', optional: true, overrideEnv: 'ORUN_SECRET_X' }
    ])
  })
})

describe('toBackendPlan', () => {
  test('component comes from the field for both plan shapes, never from the id', () => {
    const today = loadFixture('orun254-matrix')
    expect(toBackendPlan(today.file, today.id).jobs[1]).toMatchObject({
      jobId: 'api-edge.dev.deploy',
      component: 'api-edge',
      deps: ['foundation.dev.plan-apply']
    })
    const older = loadFixture('single')
    expect(toBackendPlan(older.file, older.id).jobs[0]).toMatchObject({
      jobId: 'solo@dev.smoke',
      component: 'solo'
    })
    const bare = toBackendPlan(
      { metadata: { checksum: 'x' }, jobs: [{ id: 'api@dev.smoke' }] },
      'x'
    )
    expect(bare.jobs[0].component).toBe('')
  })
})

describe('depthOf', () => {
  test('the longest dependency chain above a job: 0 for roots, 5 for the end of wide-deep', () => {
    const plan = loadFixture('wide-deep')
    expect(depthOf(plan, 'net@dev.smoke')).toBe(0)
    expect(depthOf(plan, 'db@dev.smoke')).toBe(1)
    expect(depthOf(plan, 'api@dev.smoke')).toBe(2)
    // api@prod waits on api@stage (promotion), which waits on api@qa, then api@dev.
    expect(depthOf(plan, 'api@prod.smoke')).toBe(5)
    expect(depthOf(plan, 'db@prod.smoke')).toBe(1)
  })
})

describe('ancestorsOf', () => {
  test('the whole upstream of a job in wide-deep', () => {
    const plan = loadFixture('wide-deep')
    expect(ancestorsOf(plan, 'net@dev.smoke')).toEqual(new Set())
    expect(ancestorsOf(plan, 'db@dev.smoke')).toEqual(new Set(['net@dev.smoke', 'iam@dev.smoke']))
    const apiQa = ancestorsOf(plan, 'api@qa.smoke')
    expect(apiQa).toEqual(
      new Set([
        ...['net', 'iam', 'db', 'cache', 'queue', 'storage'].flatMap(c => [
          `${c}@dev.smoke`,
          `${c}@qa.smoke`
        ]),
        'api@dev.smoke'
      ])
    )
    expect(apiQa.has('api@qa.smoke')).toBe(false)
    expect(apiQa.has('worker@dev.smoke')).toBe(false)
  })

  test('matches the transitive closure on random DAGs', () => {
    const random = seededRandom(99)
    for (let round = 0; round < 50; round++) {
      const file = randomDagPlan(random, 2 + Math.floor(random() * 40))
      const plan = parsePlan(JSON.stringify(file), 'random.json')
      // Closure built along the topological order: a job's ancestors are its deps and theirs.
      const closure = new Map<string, Set<string>>()
      for (const job of plan.order) {
        const set = new Set<string>()
        for (const dep of job.dependsOn ?? []) {
          set.add(dep)
          for (const up of closure.get(dep)!) set.add(up)
        }
        closure.set(job.id, set)
      }
      for (const job of plan.order) expect(ancestorsOf(plan, job.id)).toEqual(closure.get(job.id))
    }
  })
})

describe('singleJobPlan', () => {
  test('keeps only the job, drops only its dependsOn, keeps every other field', () => {
    const plan = loadFixture('remote-state-matrix')
    const original = JSON.parse(fixtureText('remote-state-matrix')) as PlanFile
    const single = singleJobPlan(plan, 'api@stage.smoke')

    const { jobs, execution, ...rest } = single
    const { jobs: originalJobs, execution: originalExecution, ...originalRest } = original
    expect(rest).toEqual(originalRest)
    expect(originalExecution).toEqual({ concurrency: 1, failFast: true })
    expect(execution).toEqual({ concurrency: 1, failFast: true })
    expect(jobs).toHaveLength(1)
    const { dependsOn, ...job } = jobs[0]
    const { dependsOn: originalDeps, ...originalJob } = originalJobs.find(
      j => j.id === 'api@stage.smoke'
    )!
    expect(originalDeps).toEqual(['foundation@stage.smoke'])
    expect(dependsOn ?? []).toEqual([])
    expect(job).toEqual(originalJob)
  })

  test('unknown fields, top level and per job, survive', () => {
    const file = {
      apiVersion: 'sourceplane.io/v1',
      futureTopLevel: { nested: [1, 2, 3] },
      metadata: { checksum: 'sha256-00112233445566778899', extra: 'kept' },
      jobs: [
        { id: 'up', gates: ['manual'] },
        {
          id: 'down',
          dependsOn: ['up'],
          secretRefs: [{ name: 'TOKEN' }],
          parameters: { replicas: 3 },
          steps: [{ id: 's', run: 'true', retries: 2 }]
        }
      ]
    }
    const single = singleJobPlan(parsePlan(JSON.stringify(file), 'p.json'), 'down')
    expect(single.futureTopLevel).toEqual({ nested: [1, 2, 3] })
    expect(single.apiVersion).toBe('sourceplane.io/v1')
    expect(single.metadata).toEqual(file.metadata)
    expect(single.jobs).toEqual([
      {
        id: 'down',
        dependsOn: [],
        secretRefs: [{ name: 'TOKEN' }],
        parameters: { replicas: 3 },
        steps: [{ id: 's', run: 'true', retries: 2 }]
      }
    ])
  })

  test('sets execution.concurrency to 1 and keeps the other execution fields (orun 2.54 plan)', () => {
    const plan = loadFixture('orun254-matrix')
    const single = singleJobPlan(plan, 'api-edge.dev.deploy')
    expect(single.execution).toEqual({ concurrency: 1, failFast: true })
    expect(single.apiVersion).toBe('orun.io/v1')
    expect(single.jobs.map(j => [j.id, j.dependsOn, j.checkName])).toEqual([
      ['api-edge.dev.deploy', [], 'api-edge · dev · Deploy']
    ])
    expect(plan.file.execution).toEqual({ concurrency: 4, failFast: true })
    const bare = parsePlan(
      JSON.stringify({ metadata: { checksum: 'sha256-0011223344556677' }, jobs: [{ id: 'a' }] }),
      'p.json'
    )
    expect(singleJobPlan(bare, 'a').execution).toEqual({ concurrency: 1 })
  })

  test('does not change the plan it was derived from', () => {
    const plan = loadFixture('failing-upstream')
    singleJobPlan(plan, 'web@dev.smoke')
    expect(plan.byId.get('web@dev.smoke')?.dependsOn).toEqual(['api@dev.smoke'])
    expect(plan.file.jobs).toHaveLength(3)
  })

  test('an unknown job id is a bug, not a user error', () => {
    const plan = loadFixture('single')
    expect(() => singleJobPlan(plan, 'ghost@dev.smoke')).toThrow(/ghost@dev\.smoke/)
    try {
      singleJobPlan(plan, 'ghost@dev.smoke')
    } catch (error) {
      expect(error).not.toBeInstanceOf(UserError)
    }
  })
})

describe('selectJobs', () => {
  const plan = loadFixture('wide-deep')

  test('no filter selects every job in topological order', () => {
    expect(selectJobs(plan, [], [])).toEqual(plan.order)
  })

  test('environments filter, order kept', () => {
    const dev = selectJobs(plan, ['dev'], [])
    expect(dev).toHaveLength(10)
    expect(dev.every(job => job.environment === 'dev')).toBe(true)
    expect(dev).toEqual(plan.order.filter(job => job.environment === 'dev'))
  })

  test('components and environments together', () => {
    const selected = selectJobs(plan, ['qa', 'prod'], ['api', 'web'])
    expect(selected.map(job => job.id)).toEqual([
      'api@qa.smoke',
      'web@qa.smoke',
      'api@prod.smoke',
      'web@prod.smoke'
    ])
  })

  test('an unknown environment is a UserError naming the input and what the plan has', () => {
    let thrown: unknown
    try {
      selectJobs(plan, ['dev', 'staging'], [])
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(UserError)
    const message = (thrown as UserError).message
    expect(message).toMatch(/Input 'environments'/)
    expect(message).toContain("'staging'")
    expect(message).not.toContain("'dev'")
    expect(message).toContain('dev, prod, qa, stage')
    expect(message).not.toContain('\n')
  })

  test('an unknown component is a UserError naming the components input', () => {
    expect(() => selectJobs(plan, [], ['nope'])).toThrow(UserError)
    expect(() => selectJobs(plan, [], ['nope'])).toThrow(/Input 'components' names 'nope'/)
  })

  test('a filter on an empty plan says the plan has none', () => {
    expect(() => selectJobs(loadFixture('empty'), ['dev'], [])).toThrow(/The plan has: none\./)
  })
})
