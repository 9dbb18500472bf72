import { afterAll, beforeAll, describe, expect, test } from '@jest/globals'
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

// Exercises the stand-in orun as a real process, the way the action runs it.

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const ORUN = path.join(repoRoot, 'testing', 'orun-standin', 'orun')
const DEMO_INTENT = path.join(repoRoot, 'demo', 'intent', 'intent.yaml')
const FAILING_INTENT = path.join(repoRoot, 'demo', 'intent', 'failing', 'intent.yaml')
// The shared fixtures live in shared/ beside the clone, in CI as on a developer machine.
const FIXTURES = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'plans')

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

interface Job {
  id: string
  name: string
  component: string
  environment: string
  composition: string
  dependsOn: string[]
  env: Record<string, string>
  steps: { id: string; name: string; run: string }[]
  [key: string]: unknown
}

interface Plan {
  apiVersion: string
  kind: string
  metadata: { name: string; checksum: string; generatedAt: string }
  jobs: Job[]
  [key: string]: unknown
}

interface RecordLine {
  job: string | null
  pid: number
  start: number
  end: number
  exitCode: number
  argv: string[]
  cwd: string
  remoteState: boolean
}

/** The test process's env without anything that changes the stand-in's behaviour. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('ORUN_') || key === 'GITHUB_ACTIONS') continue
    env[key] = value
  }
  return { ...env, ...extra }
}

function orun(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
  onSpawn?: (pid: number) => void
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(ORUN, args, { cwd, env: cleanEnv(env) })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', chunk => (stdout += chunk))
    child.stderr.on('data', chunk => (stderr += chunk))
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr }))
    if (onSpawn && child.pid !== undefined) onSpawn(child.pid)
  })
}

let scratch: string
let dirCount = 0

beforeAll(() => {
  scratch = mkdtempSync(path.join(tmpdir(), 'orun-standin-test-'))
})

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true })
})

function newDir(intent?: string): string {
  const dir = path.join(scratch, `d${++dirCount}`)
  mkdirSync(dir)
  if (intent !== undefined) {
    writeFileSync(path.join(dir, 'intent.yaml'), intent)
    checkOutComponentPaths(dir, intent)
  }
  return dir
}

/** The component directories a checkout of the intent's repository holds (job.path is the job's cwd). */
function checkOutComponentPaths(dir: string, intent: string): void {
  for (const [, componentPath] of intent.matchAll(/^\s+path: (\S+)\s*$/gm)) {
    mkdirSync(path.join(dir, componentPath), { recursive: true })
  }
}

function demoDir(source = DEMO_INTENT): string {
  const dir = newDir()
  copyFileSync(source, path.join(dir, 'intent.yaml'))
  checkOutComponentPaths(dir, readFileSync(source, 'utf8'))
  return dir
}

function readPlan(file: string): Plan {
  return JSON.parse(readFileSync(file, 'utf8')) as Plan
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0
    )
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

const planIdOf = (plan: Plan): string => plan.metadata.checksum.slice('sha256-'.length, 19)

/**
 * `orun plan -o plan.json` as the orun these tests were first written against (1.12.x:
 * `comp@env.job` ids, execution.concurrency 1); `today` compiles as orun 2.54.
 */
async function compile(dir: string, args: string[] = [], version = OLDER_ORUN): Promise<Plan> {
  const result = await orun(['plan', '-o', 'plan.json', ...args], dir, {
    ORUN_STANDIN_VERSION: version
  })
  expect(result.code).toBe(0)
  // orun 2.5x prints its object-model diagnostics on stderr (v2.75: only with --debug).
  expect(result.stderr).toMatch(/^(object-model: [^\n]+\n)?$/)
  return readPlan(path.join(dir, 'plan.json'))
}

const OLDER_ORUN = '1.12.0'
const TODAY = '2.54.0'

const depsById = (plan: Plan): Record<string, string[]> =>
  Object.fromEntries(plan.jobs.map(j => [j.id, j.dependsOn]))

/** Fast intent: each step prints its ORUN_* environment. */
const ENV_INTENT = `
name: env-check
environments: [dev, stage]
components:
  - name: foundation
    composition: terraform
    path: apps/foundation
    run: 'echo "PLAN=$ORUN_PLAN_ID EXEC=$ORUN_EXEC_ID JOB=$ORUN_JOB_ID RUN=$ORUN_JOB_RUN_ID CLUSTER=$CLUSTER ENV=$ENV PWD=$(pwd)"'
  - name: api
    composition: helm
    path: apps/api
    dependsOn: [foundation]
    run: 'echo "api $ENV ran"'
  - name: db
    composition: helm
    path: apps/db
    run: 'echo "db $ENV ran"'
  - name: web
    composition: helm
    path: apps/web
    dependsOn: [api, db]
    run: 'echo "web $ENV ran"'
`

describe('orun --version and usage', () => {
  test('prints the default version', async () => {
    const result = await orun(['--version'], scratch)
    expect(result).toEqual({ code: 0, stdout: 'orun version 2.54.0\n', stderr: '' })
  })

  test('prints the version from ORUN_STANDIN_VERSION', async () => {
    const result = await orun(['--version'], scratch, { ORUN_STANDIN_VERSION: '3.1.4' })
    expect(result.stdout).toBe('orun version 3.1.4\n')
  })

  test('run --help lists --local, plan --help lists the plan flags', async () => {
    const run = await orun(['run', '--help'], scratch)
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/--local\s+force local filesystem state/)
    expect(run.stdout).toContain('--exec-id')
    const plan = await orun(['plan', '--help'], scratch)
    expect(plan.code).toBe(0)
    for (const flag of ['--name', '--output', '--all', '--env', '--component', '--changed']) {
      expect(plan.stdout).toContain(flag)
    }
  })

  test('ORUN_STANDIN_NO_LOCAL_FLAG emulates an orun without --local', async () => {
    const env = { ORUN_STANDIN_NO_LOCAL_FLAG: '1' }
    const help = await orun(['run', '--help'], scratch, env)
    expect(help.code).toBe(0)
    expect(help.stdout).not.toContain('--local')
    const run = await orun(['run', 'x.json', '--job', 'a', '--local'], scratch, env)
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('Error: unknown flag: --local')
  })

  test('unknown command and unknown flag are usage errors (exit 2)', async () => {
    const command = await orun(['deploy'], scratch)
    expect(command.code).toBe(2)
    expect(command.stderr).toMatch(/^Error: unknown command "deploy"/)
    const flag = await orun(['plan', '--bogus'], scratch)
    expect(flag.code).toBe(2)
    expect(flag.stderr).toMatch(/^Error: unknown flag: --bogus/)
  })
})

describe('orun plan', () => {
  test("orun 2.54 (the default): the demo intent compiles to today's shape, like orun254-matrix.json", async () => {
    const dir = demoDir()
    const before = Date.now()
    const result = await orun(['plan', '-o', 'out/plan.json'], dir)
    expect(result.code).toBe(0)
    // 2.54's summary block and its object-model diagnostics (cmd/orun/main.go, object_model_plan.go).
    expect(result.stderr).toMatch(/^object-model: source=[0-9a-f]{12} .*\n$/)
    expect(result.stdout).toMatch(/^✓ Plan revision created\n/)
    expect(result.stdout).toContain('  │ 3 components × 2 envs → 6 jobs\n')

    const plan = readPlan(path.join(dir, 'out', 'plan.json'))
    const fixture = readPlan(path.join(FIXTURES, 'orun254-matrix.json'))
    expect(Object.keys(plan)).toEqual(Object.keys(fixture))
    expect(plan.apiVersion).toBe('orun.io/v1')
    expect(plan.execution).toEqual({ concurrency: 4, failFast: true })
    // The checksum covers generatedAt: every compile is a new plan id.
    const digest = createHash('sha256')
      .update(
        canonicalJson({
          generatedAt: plan.metadata.generatedAt,
          jobs: plan.jobs.map(({ uid: _uid, ...job }) => job)
        })
      )
      .digest('hex')
    expect(plan.metadata.checksum).toBe(`sha256-${digest}`)
    expect(Date.parse(plan.metadata.generatedAt)).toBeGreaterThanOrEqual(
      Math.floor(before / 1000) * 1000
    )

    expect(plan.jobs.map(j => j.id)).toEqual([
      'foundation.dev.smoke',
      'api.dev.smoke',
      'web.dev.smoke',
      'foundation.stage.smoke',
      'api.stage.smoke',
      'web.stage.smoke'
    ])
    // dependsOn is omitted on roots, as orun does.
    expect(Object.fromEntries(plan.jobs.map(j => [j.id, j.dependsOn]))).toEqual({
      'foundation.dev.smoke': undefined,
      'api.dev.smoke': ['foundation.dev.smoke'],
      'web.dev.smoke': ['api.dev.smoke'],
      'foundation.stage.smoke': undefined,
      'api.stage.smoke': ['foundation.stage.smoke'],
      'web.stage.smoke': ['api.stage.smoke']
    })
    const api = plan.jobs[1]
    // Field for field in the fixture's order; `env` (the stand-in's job env) sits before uid.
    const fixtureKeys = Object.keys(fixture.jobs[1])
    expect(Object.keys(api)).toEqual([
      ...fixtureKeys.slice(0, fixtureKeys.indexOf('uid')),
      'env',
      ...fixtureKeys.slice(fixtureKeys.indexOf('uid'))
    ])
    expect(api).toMatchObject({
      name: 'smoke',
      component: 'api',
      environment: 'dev',
      runsOn: 'ubuntu-latest',
      displayName: 'Smoke',
      checkName: 'api · dev · Smoke',
      uid: expect.stringMatching(new RegExp(`^job_${planIdOf(plan)}_[0-9a-f]{12}$`))
    })
    expect(new Set(plan.jobs.map(j => j.uid)).size).toBe(6)
  })

  test('runsOn and secretRefs from the intent reach the job (secretRefs sorted by asEnv)', async () => {
    const dir = newDir(`
environments: [stage]
components:
  - name: db
    composition: terraform
    runsOn: self-hosted
    secretRefs:
      - { asEnv: SENTRY_DSN, ref: 'secret://stage/db/SENTRY_DSN', optional: true }
      - { asEnv: DATABASE_URL, ref: 'secret://stage/db/DATABASE_URL' }
    run: 'true'
`)
    const plan = await compile(dir, [], TODAY)
    expect(plan.jobs[0].runsOn).toBe('self-hosted')
    expect(plan.jobs[0].secretRefs).toEqual([
      { asEnv: 'DATABASE_URL', ref: 'secret://stage/db/DATABASE_URL' },
      { asEnv: 'SENTRY_DSN', ref: 'secret://stage/db/SENTRY_DSN', optional: true }
    ])
  })

  test('an orun before 1.12.22 compiles the demo intent into the older fixture shape', async () => {
    const dir = demoDir()
    const before = Date.now()
    const result = await orun(['plan', '-o', 'out/plan.json'], dir, {
      ORUN_STANDIN_VERSION: OLDER_ORUN
    })
    expect(result.code).toBe(0)
    expect(result.stderr).toBe('')
    expect(result.stdout.trimStart().startsWith('{')).toBe(false)
    expect(result.stdout).toContain('3 components × 2 envs → 6 jobs')

    const plan = readPlan(path.join(dir, 'out', 'plan.json'))
    const fixture = readPlan(path.join(FIXTURES, 'remote-state-matrix.json'))
    expect(Object.keys(plan)).toEqual(Object.keys(fixture))
    expect(plan.apiVersion).toBe(fixture.apiVersion)
    expect(plan.kind).toBe(fixture.kind)
    expect(plan.metadata.name).toBe('remote-state-e2e')
    expect(plan.metadata.checksum).toMatch(/^sha256-[0-9a-f]{64}$/)
    const digest = createHash('sha256').update(canonicalJson(plan.jobs)).digest('hex')
    expect(plan.metadata.checksum).toBe(`sha256-${digest}`)
    const generatedAt = Date.parse(plan.metadata.generatedAt)
    expect(generatedAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000)
    expect(generatedAt).toBeLessThanOrEqual(Date.now())
    expect(plan.execution).toEqual(fixture.execution)
    expect(plan.spec).toEqual(fixture.spec)

    // Same DAG as the fixture, field for field in shape.
    expect(plan.jobs.map(j => j.id)).toEqual(fixture.jobs.map(j => j.id))
    expect(depsById(plan)).toEqual(depsById(fixture))
    for (const [index, job] of plan.jobs.entries()) {
      const expected = fixture.jobs[index]
      expect(Object.keys(job)).toEqual(Object.keys(expected))
      expect(job.steps.map(s => Object.keys(s))).toEqual(expected.steps.map(s => Object.keys(s)))
      expect(job.id).toBe(`${job.component}@${job.environment}.${job.name}`)
      expect(job.composition).toBe(expected.composition)
      expect(job.env).toEqual({ ...expected.env, ENV: job.environment })
    }

    // The named copy is the same plan.
    const named = readFileSync(path.join(dir, '.orun', 'plans', 'remote-state-e2e.json'), 'utf8')
    expect(named).toBe(readFileSync(path.join(dir, 'out', 'plan.json'), 'utf8'))
  })

  test('--name renames the plan and its stored copy; the checksum ignores the name', async () => {
    const dir = demoDir()
    const full = await compile(dir)
    const renamed = await orun(['plan', '--name', 'other', '--all'], dir, {
      ORUN_STANDIN_VERSION: OLDER_ORUN
    })
    expect(renamed.code).toBe(0)
    const stored = readPlan(path.join(dir, '.orun', 'plans', 'other.json'))
    expect(stored.metadata.name).toBe('other')
    expect(stored.metadata.checksum).toBe(full.metadata.checksum)
  })

  test('--env keeps only those environments', async () => {
    const dir = demoDir()
    const full = await compile(dir)
    const stage = await compile(dir, ['-e', 'stage'])
    expect(depsById(stage)).toEqual({
      'foundation@stage.smoke': [],
      'api@stage.smoke': ['foundation@stage.smoke'],
      'web@stage.smoke': ['api@stage.smoke']
    })
    expect(stage.metadata.checksum).not.toBe(full.metadata.checksum)
    const both = await compile(dir, ['--env', 'stage,dev'])
    expect(both.jobs.map(j => j.id)).toEqual(full.jobs.map(j => j.id))
  })

  test('--component keeps only those components and drops dependencies on the rest', async () => {
    const dir = demoDir()
    const api = await compile(dir, ['--component', 'api'])
    expect(depsById(api)).toEqual({ 'api@dev.smoke': [], 'api@stage.smoke': [] })
    const apiWeb = await compile(dir, ['-e', 'dev', '--component', 'web', '--component', 'api'])
    expect(depsById(apiWeb)).toEqual({
      'api@dev.smoke': [],
      'web@dev.smoke': ['api@dev.smoke']
    })
  })

  test('unknown environment or component is an error', async () => {
    const dir = demoDir()
    const env = await orun(['plan', '-e', 'prod'], dir)
    expect(env.code).toBe(1)
    expect(env.stderr).toMatch(/^Error: unknown environment "prod".*\n$/)
    const component = await orun(['plan', '--component', 'cache'], dir)
    expect(component.code).toBe(1)
    expect(component.stderr).toMatch(/^Error: unknown component "cache".*\n$/)
    expect(existsSync(path.join(dir, '.orun'))).toBe(false)
  })

  test('promoteFrom adds an edge from the earlier environment, dropped when it is filtered out', async () => {
    const dir = newDir(`
environments: [dev, stage, prod]
components:
  - name: app
    composition: helm
    promoteFrom: stage
    run: 'true'
  - name: web
    composition: helm
    dependsOn: [app]
    promoteFrom: dev
    run: 'true'
`)
    const plan = await compile(dir)
    expect(plan.metadata.name).toBe('plan')
    expect(depsById(plan)).toEqual({
      'app@dev.smoke': [],
      'web@dev.smoke': ['app@dev.smoke'],
      'app@stage.smoke': [],
      'web@stage.smoke': ['app@stage.smoke', 'web@dev.smoke'],
      'app@prod.smoke': ['app@stage.smoke'],
      'web@prod.smoke': ['app@prod.smoke', 'web@dev.smoke']
    })
    const prod = await compile(dir, ['-e', 'prod'])
    expect(depsById(prod)).toEqual({
      'app@prod.smoke': [],
      'web@prod.smoke': ['app@prod.smoke']
    })
  })

  test.each([
    [
      'a dependency cycle, named',
      `environments: [dev]
components:
  - { name: a, composition: helm, dependsOn: [c], run: 'true' }
  - { name: b, composition: helm, dependsOn: [a], run: 'true' }
  - { name: c, composition: helm, dependsOn: [b], run: 'true' }
`,
      /^Error: intent\.yaml: dependency cycle: a -> c -> b -> a\n$/
    ],
    [
      'a self dependency',
      `environments: [dev]
components:
  - { name: a, composition: helm, dependsOn: [a], run: 'true' }
`,
      /^Error: intent\.yaml: dependency cycle: a -> a\n$/
    ],
    [
      'an unknown dependency',
      `environments: [dev]
components:
  - { name: api, composition: helm, dependsOn: [foundation], run: 'true' }
`,
      /^Error: intent\.yaml: component "api" depends on unknown component "foundation"\n$/
    ],
    [
      'a YAML syntax error',
      `environments: [dev\ncomponents: {`,
      /^Error: failed to load intent: failed to parse intent YAML: yaml: line \d+: .+\n$/
    ],
    [
      'a component without run',
      `environments: [dev]\ncomponents:\n  - { name: api, composition: helm }\n`,
      /^Error: intent\.yaml: component "api": run is required\n$/
    ]
  ])('rejects %s', async (_what, intent, message) => {
    const dir = newDir(intent)
    const result = await orun(['plan', '-o', 'plan.json'], dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(message)
    expect(existsSync(path.join(dir, 'plan.json'))).toBe(false)
  })

  test('fails without intent.yaml in the current directory', async () => {
    const result = await orun(['plan'], newDir())
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/^Error: no intent\.yaml in .*\n$/)
  })

  test('--changed compiles only components whose path changed between refs', async () => {
    const dir = demoDir()
    const git = (...args: string[]): string =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
        cwd: dir,
        encoding: 'utf8'
      })
    for (const component of ['foundation', 'api', 'web']) {
      mkdirSync(path.join(dir, 'apps', component), { recursive: true })
      writeFileSync(path.join(dir, 'apps', component, 'main.tf'), 'v1\n')
    }
    git('init', '-q')
    git('add', '.')
    git('commit', '-qm', 'one')
    writeFileSync(path.join(dir, 'apps', 'api', 'main.tf'), 'v2\n')
    git('commit', '-qam', 'two')
    writeFileSync(path.join(dir, 'apps', 'web', 'main.tf'), 'v3\n')
    git('commit', '-qam', 'three')

    const latest = await compile(dir, ['--changed'])
    expect(latest.jobs.map(j => j.id)).toEqual(['web@dev.smoke', 'web@stage.smoke'])
    expect(latest.jobs.every(j => j.dependsOn.length === 0)).toBe(true)

    const range = await compile(dir, ['--changed', '--base', 'HEAD~2', '--head', 'HEAD~0'])
    expect(depsById(range)).toEqual({
      'api@dev.smoke': [],
      'web@dev.smoke': ['api@dev.smoke'],
      'api@stage.smoke': [],
      'web@stage.smoke': ['api@stage.smoke']
    })

    const scoped = await compile(dir, [
      '--changed',
      '--base',
      'HEAD~2',
      '-e',
      'dev',
      '--component',
      'web'
    ])
    expect(depsById(scoped)).toEqual({ 'web@dev.smoke': [] })
  })

  test('--changed swallows git errors like orun: outside a work tree it plans zero jobs, exit 0', async () => {
    const dir = demoDir()
    const result = await orun(['plan', '--changed', '-o', 'plan.json'], dir, {
      ORUN_STANDIN_VERSION: '2.75.0'
    })
    expect(result).toMatchObject({ code: 0, stderr: '' })
    expect(readPlan(path.join(dir, 'plan.json')).jobs).toEqual([])
  })

  describe('--from-ci github --event-file', () => {
    const TRIGGERS = `
name: ci
environments:
  dev: { activation: { triggerRefs: [pr] } }
  stage: { activation: { triggerRefs: [main, release-tag] } }
automation:
  triggerBindings:
    pr:
      on: { provider: github, event: pull_request, actions: [opened, synchronize], baseBranches: [main] }
      plan: { scope: changed, base: pull_request.base.sha, head: pull_request.head.sha }
    main:
      on: { provider: github, event: push, branches: [main] }
    release-tag:
      on: { provider: github, event: push, tags: ['v*'] }
components:
  - { name: api, composition: helm, path: apps/api, run: 'true' }
  - { name: web, composition: helm, path: apps/web, dependsOn: [api], run: 'true' }
`
    const event = (dir: string, payload: object) => {
      writeFileSync(path.join(dir, 'event.json'), JSON.stringify(payload))
      return ['plan', '-o', 'plan.json', '--from-ci', 'github', '--event-file', 'event.json']
    }

    test('a matched binding keeps only the environments it activates', async () => {
      const dir = newDir(TRIGGERS)
      const args = event(dir, { ref: 'refs/tags/v1.2.0', before: 'a', after: 'b' })
      const result = await orun(args, dir, { GITHUB_EVENT_NAME: 'push' })
      expect(result.code).toBe(0)
      expect(result.stderr).toMatch(/^(object-model: [^\n]+\n)?$/)
      expect(readPlan(path.join(dir, 'plan.json')).jobs.map(j => j.id)).toEqual([
        'api.stage.smoke',
        'web.stage.smoke'
      ])
    })

    test('no binding matches: "… nothing to plan" on stderr, exit 0, no plan written anywhere', async () => {
      const dir = newDir(TRIGGERS)
      const args = event(dir, {
        action: 'closed',
        pull_request: { base: { ref: 'main', sha: 'a' }, head: { ref: 'f', sha: 'b' } }
      })
      const result = await orun(args, dir, { GITHUB_EVENT_NAME: 'pull_request' })
      expect(result).toEqual({
        code: 0,
        stdout: '',
        stderr:
          '○ no trigger binding matched: github event pull_request action closed — nothing to plan\n'
      })
      expect(existsSync(path.join(dir, 'plan.json'))).toBe(false)
      expect(existsSync(path.join(dir, '.orun'))).toBe(false)
    })

    test('a binding with plan.scope changed turns --changed on, with refs read from the event', async () => {
      const dir = newDir(TRIGGERS)
      const git = (...args: string[]): string =>
        execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
          cwd: dir,
          encoding: 'utf8'
        }).trim()
      for (const component of ['api', 'web']) {
        mkdirSync(path.join(dir, 'apps', component), { recursive: true })
        writeFileSync(path.join(dir, 'apps', component, 'f'), '1\n')
      }
      git('init', '-q')
      git('add', '.')
      git('commit', '-qm', 'one')
      const base = git('rev-parse', 'HEAD')
      writeFileSync(path.join(dir, 'apps', 'web', 'f'), '2\n')
      git('commit', '-qam', 'two')
      const head = git('rev-parse', 'HEAD')
      // A third commit the event does not cover: HEAD~1..HEAD would find apps/api.
      writeFileSync(path.join(dir, 'apps', 'api', 'f'), '3\n')
      git('commit', '-qam', 'three')
      const args = event(dir, {
        action: 'synchronize',
        pull_request: { base: { ref: 'main', sha: base }, head: { ref: 'f', sha: head } }
      })
      const result = await orun(args, dir, { GITHUB_EVENT_NAME: 'pull_request' })
      expect(result.code).toBe(0)
      expect(readPlan(path.join(dir, 'plan.json')).jobs.map(j => j.id)).toEqual(['web.dev.smoke'])
    })

    test.each([
      [
        'an intent without triggerBindings',
        'environments: [dev]\ncomponents:\n  - { name: a, composition: helm, run: "true" }\n',
        [],
        /^Error: no trigger bindings defined in automation\.triggerBindings\n$/
      ],
      [
        '--event-file without --from-ci',
        null,
        ['--from-ci', ''],
        /^Error: --from-ci is required when using --event-file\n$/
      ],
      [
        'another provider',
        null,
        ['--from-ci', 'gitlab'],
        /^Error: unsupported event provider: gitlab\n$/
      ]
    ])('%s is an error', async (_what, intent, extra, message) => {
      const dir = newDir(intent ?? TRIGGERS)
      const args = event(dir, { ref: 'refs/heads/main', before: 'a', after: 'b' })
      const flags = extra.length ? [...args.slice(0, 3), ...extra, ...args.slice(5)] : args
      const result = await orun(flags, dir, { GITHUB_EVENT_NAME: 'push' })
      expect(result.code).toBe(1)
      expect(result.stderr).toMatch(message)
      expect(existsSync(path.join(dir, 'plan.json'))).toBe(false)
    })
  })
})

describe('orun run', () => {
  test('runs the step with the job env and ORUN_* variables', async () => {
    const dir = newDir(ENV_INTENT)
    const plan = await compile(dir)
    const planId = planIdOf(plan)
    const result = await orun(
      ['run', 'plan.json', '--job', 'foundation@stage.smoke', '--exec-id', 'exec-42'],
      dir
    )
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(
      `PLAN=${planId} EXEC=exec-42 JOB=foundation@stage.smoke ` +
        `RUN=exec-42/foundation@stage.smoke CLUSTER=stage-smoke ENV=stage PWD=${path.join(dir, 'apps', 'foundation')}\n`
    )
    expect(result.stdout).toMatch(/--- step smoke \(1\/1\) start\n/)
    expect(result.stdout).toMatch(/--- step smoke succeeded in [\d.]+s\n/)
  })

  test('generates an exec id when none is given; ORUN_EXEC_ID is honoured', async () => {
    const dir = newDir(ENV_INTENT)
    await compile(dir)
    const args = ['run', 'plan.json', '--job', 'foundation@dev.smoke']
    const generated = await orun(args, dir)
    expect(generated.code).toBe(0)
    expect(generated.stdout).toMatch(/EXEC=\S+ JOB=foundation@dev\.smoke/)
    expect(generated.stdout).not.toContain('EXEC= ')
    const fromEnv = await orun(args, dir, { ORUN_EXEC_ID: 'env-exec' })
    expect(fromEnv.stdout).toContain('EXEC=env-exec ')
  })

  test('--gha: a job header, one group per step around stop-commands, a footer and the run summary', async () => {
    const dir = newDir(ENV_INTENT)
    await compile(dir)
    const result = await orun(['run', 'plan.json', '--job', 'db@dev.smoke', '--gha'], dir)
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^ {2}job-id {6}db@dev\.smoke$/m)
    expect(result.stdout).toMatch(
      /::group::✓ {2}01 smoke {2}\d+\.\ds\n::stop-commands::orun-stop-db@dev\.smoke\ndb dev ran\n::orun-stop-db@dev\.smoke::\n::endgroup::\n/
    )
    // 2.54 closes with its Execution block after the runner's summary.
    expect(result.stdout).toMatch(
      /\n✓ smoke completed · \d+\.\ds\n\n✓ Done in \d+\.\ds\n {2}1 succeeded\n\n✓ Execution completed\n\n {2}Execution: exec-\S+\n$/
    )
  })

  test('a failing step exits with its code and does not complete the job', async () => {
    const dir = demoDir(FAILING_INTENT)
    await compile(dir)
    const failed = await orun(
      ['run', 'plan.json', '--job', 'foundation@dev.smoke', '--exec-id', 'f'],
      dir
    )
    expect(failed.code).toBe(3)
    expect(failed.stderr).toContain('foundation dev broke')
    const api = await orun(['run', 'plan.json', '--job', 'api@dev.smoke', '--exec-id', 'f'], dir)
    expect(api.code).toBe(1)
    expect(api.stderr).toContain(
      'cannot run api@dev.smoke: dependencies not completed (foundation@dev.smoke)'
    )
  })

  test('unknown job is an error', async () => {
    const dir = newDir(ENV_INTENT)
    await compile(dir)
    const result = await orun(['run', 'plan.json', '--job', 'cache@dev.smoke'], dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/^Error: job not found: cache@dev\.smoke\n/)
  })

  test('local dependency check refuses until the dependencies ran with the same exec id', async () => {
    const dir = newDir(ENV_INTENT)
    await compile(dir)
    const run = (job: string, execId: string): Promise<Result> =>
      orun(['run', 'plan.json', '--job', job, '--exec-id', execId], dir)

    const web = await run('web@dev.smoke', 'e1')
    expect(web.code).toBe(1)
    expect(web.stderr).toBe(
      'cannot run web@dev.smoke: dependencies not completed (api@dev.smoke, db@dev.smoke)\n'
    )
    expect(web.stdout).not.toContain('ran')

    expect((await run('foundation@dev.smoke', 'e1')).code).toBe(0)
    expect((await run('api@dev.smoke', 'e1')).code).toBe(0)
    const partly = await run('web@dev.smoke', 'e1')
    expect(partly.stderr).toBe(
      'cannot run web@dev.smoke: dependencies not completed (db@dev.smoke)\n'
    )
    expect((await run('db@dev.smoke', 'e1')).code).toBe(0)
    const ready = await run('web@dev.smoke', 'e1')
    expect(ready.code).toBe(0)
    expect(ready.stdout).toContain('web dev ran')

    // Another exec id has its own, empty state.
    expect((await run('api@dev.smoke', 'e2')).code).toBe(1)
    const state = JSON.parse(readFileSync(path.join(dir, '.orun', 'state', 'e1.json'), 'utf8'))
    expect([...state.completed].sort()).toEqual([
      'api@dev.smoke',
      'db@dev.smoke',
      'foundation@dev.smoke',
      'web@dev.smoke'
    ])
  })

  test('without an exec id, state is "local"; ORUN_STATE_DIR moves it', async () => {
    const dir = newDir(ENV_INTENT)
    await compile(dir)
    const stateDir = path.join(scratch, `state-${dirCount}`)
    const env = { ORUN_STATE_DIR: stateDir }
    expect((await orun(['run', 'plan.json', '--job', 'foundation@dev.smoke'], dir, env)).code).toBe(
      0
    )
    expect(readdirSync(stateDir)).toEqual(['local.json'])
    expect(existsSync(path.join(dir, '.orun', 'state'))).toBe(false)
    const api = await orun(['run', 'plan.json', '--job', 'api@dev.smoke'], dir, env)
    expect(api.code).toBe(0)
    // The default location never saw foundation complete.
    const elsewhere = await orun(['run', 'plan.json', '--job', 'api@dev.smoke'], dir)
    expect(elsewhere.code).toBe(1)
  })

  describe('remote state', () => {
    const remoteIntent = `${ENV_INTENT}execution:\n  state:\n    mode: remote\n`
    test.each([
      [
        '--remote-state flag',
        ENV_INTENT,
        ['--remote-state', '--backend-url', 'http://127.0.0.1:9'],
        {}
      ],
      ['ORUN_REMOTE_STATE=true', ENV_INTENT, [], { ORUN_REMOTE_STATE: 'true' }],
      ['intent.yaml execution.state.mode: remote', remoteIntent, [], {}],
      // false does not override the intent: only --local does
      ['intent.yaml execution.state.mode: remote', remoteIntent, [], { ORUN_REMOTE_STATE: 'false' }]
    ])('%s turns it on (exit 97), --local turns it off', async (trigger, intent, flags, env) => {
      const dir = newDir(intent)
      await compile(dir)
      const record = path.join(dir, 'record.jsonl')
      const args = ['run', 'plan.json', '--job', 'db@dev.smoke', ...flags]
      const on = await orun(args, dir, { ...env, ORUN_STANDIN_RECORD: record })
      expect(on.code).toBe(97)
      expect(on.stderr).toContain(
        `stand-in orun: remote state is ON in the child process (${trigger})`
      )
      expect(on.stdout).not.toContain('db dev ran')

      const off = await orun([...args, '--local'], dir, { ...env, ORUN_STANDIN_RECORD: record })
      expect(off.code).toBe(0)
      expect(off.stdout).toContain('db dev ran')

      const lines = readFileSync(record, 'utf8')
        .trim()
        .split('\n')
        .map(l => JSON.parse(l) as RecordLine)
      expect(lines.map(l => [l.exitCode, l.remoteState])).toEqual([
        [97, true],
        [0, false]
      ])
    })

    test('is off by default and with ORUN_REMOTE_STATE=false', async () => {
      const dir = newDir(ENV_INTENT)
      await compile(dir)
      const result = await orun(['run', 'plan.json', '--job', 'db@dev.smoke'], dir, {
        ORUN_REMOTE_STATE: 'false'
      })
      expect(result.code).toBe(0)
    })
  })

  test('the record file gets one line per invocation, also from concurrent runs', async () => {
    const dir = newDir(ENV_INTENT)
    await compile(dir)
    const record = path.join(dir, 'record.jsonl')
    const env = { ORUN_STANDIN_RECORD: record, ORUN_STANDIN_DELAY_MS: '500' }
    const jobs = [
      'foundation@dev.smoke',
      'db@dev.smoke',
      'foundation@stage.smoke',
      'db@stage.smoke'
    ]
    const results = await Promise.all(
      jobs.map(job => orun(['run', 'plan.json', '--job', job, '--exec-id', 'c'], dir, env))
    )
    expect(results.map(r => r.code)).toEqual([0, 0, 0, 0])
    const refused = await orun(
      ['run', 'plan.json', '--job', 'web@dev.smoke', '--exec-id', 'c'],
      dir,
      env
    )
    expect(refused.code).toBe(1)
    const after = await orun(
      ['run', 'plan.json', '--job', 'api@dev.smoke', '--exec-id', 'c'],
      dir,
      env
    )
    expect(after.code).toBe(0)

    const lines = readFileSync(record, 'utf8')
      .trim()
      .split('\n')
      .map(l => JSON.parse(l) as RecordLine)
    expect(lines).toHaveLength(6)
    expect(
      lines
        .slice(0, 4)
        .map(l => l.job)
        .sort()
    ).toEqual([...jobs].sort())
    expect(new Set(lines.map(l => l.pid)).size).toBe(6)
    for (const line of lines) {
      expect(line.cwd).toBe(dir)
      expect(line.remoteState).toBe(false)
      expect(line.end).toBeGreaterThanOrEqual(line.start)
      expect(line.argv.slice(0, 2)).toEqual(['run', 'plan.json'])
    }
    // The delay happens inside the recorded interval, so the four overlapped.
    const concurrent = lines.slice(0, 4)
    expect(Math.max(...concurrent.map(l => l.start))).toBeLessThan(
      Math.min(...concurrent.map(l => l.end))
    )
    expect(concurrent.every(l => l.end - l.start >= 500)).toBe(true)
    expect(lines[4]).toMatchObject({ job: 'web@dev.smoke', exitCode: 1 })
    expect(lines[5]).toMatchObject({ job: 'api@dev.smoke', exitCode: 0 })
    expect(lines[5].start).toBeGreaterThanOrEqual(lines[4].end)
    // Concurrent completions of one exec id are all kept.
    const state = JSON.parse(readFileSync(path.join(dir, '.orun', 'state', 'c.json'), 'utf8'))
    expect([...state.completed].sort()).toEqual([...jobs, 'api@dev.smoke'].sort())
  })

  test('plan refs: file path, plan name, plan-id prefix (v2.75); unknown and ambiguous refs fail', async () => {
    const dir = newDir(ENV_INTENT)
    const plan = await compile(dir)
    const planId = planIdOf(plan)
    const job = ['--job', 'db@dev.smoke']
    const v275 = { ORUN_STANDIN_VERSION: '2.75.0' }
    for (const ref of [
      path.join(dir, 'plan.json'),
      'plan.json',
      'env-check',
      planId,
      planId.slice(0, 5)
    ]) {
      const result = await orun(['run', ref, ...job], dir, v275)
      expect({ ref, code: result.code }).toEqual({ ref, code: 0 })
      expect(result.stdout).toContain(`(plan ${planId}, `)
    }
    // v2.75 release note: "orun run <short-id> resolves"; 2.54 did not.
    const before = await orun(['run', planId, ...job], dir)
    expect(before.code).toBe(1)
    expect(before.stderr).toMatch(/^Error: plan "[0-9a-f]{12}" not found/)

    const missing = await orun(['run', 'nothing-here', ...job], dir)
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/^Error: plan "nothing-here" not found/)

    const plans = path.join(dir, '.orun', 'plans')
    for (const [name, checksum] of [
      ['one', 'sha256-abcd1111'],
      ['two', 'sha256-abcd2222']
    ]) {
      const copy = { ...plan, metadata: { ...plan.metadata, name, checksum } }
      writeFileSync(path.join(plans, `${name}.json`), JSON.stringify(copy))
    }
    const ambiguous = await orun(['run', 'abcd', ...job], dir, v275)
    expect(ambiguous.code).toBe(1)
    expect(ambiguous.stderr).toMatch(
      /^Error: plan-id prefix "abcd" is ambiguous: abcd1111, abcd2222/
    )
    const exact = await orun(['run', 'abcd2', ...job], dir, v275)
    expect(exact.code).toBe(0)
    expect(exact.stdout).toContain('(plan abcd2222, ')
  })

  test('job ids with quotes, spaces and ; are plain strings, never shell', async () => {
    const dir = newDir()
    const jobId = `it's "odd"; touch pwned $(touch pwned2) \`touch pwned3\`@dev.smoke`
    const plan = {
      apiVersion: 'sourceplane.io/v1',
      kind: 'Plan',
      metadata: { name: 'odd', checksum: `sha256-${'0f'.repeat(32)}`, generatedAt: 'x' },
      jobs: [
        {
          id: jobId,
          dependsOn: [],
          env: {},
          steps: [{ id: 's', name: 's', run: 'printf "[%s]\\n" "$ORUN_JOB_ID"' }]
        }
      ]
    }
    writeFileSync(path.join(dir, 'odd plan.json'), JSON.stringify(plan))
    const record = path.join(dir, 'record.jsonl')
    const result = await orun(['run', 'odd plan.json', '--job', jobId], dir, {
      ORUN_STANDIN_RECORD: record
    })
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`[${jobId}]\n`)
    const unknown = await orun(['run', 'odd plan.json', '--job', `${jobId} ; touch pwned4`], dir)
    expect(unknown.code).toBe(1)
    expect(readdirSync(dir).sort()).toEqual(['.orun', 'odd plan.json', 'record.jsonl'])
    const line = JSON.parse(readFileSync(record, 'utf8')) as RecordLine
    expect(line.job).toBe(jobId)
  })

  test.each([
    ['SIGTERM', 143],
    ['SIGINT', 130]
  ] as const)('%s is forwarded to the step, exit %i', async (signal, exitCode) => {
    const dir = newDir()
    const plan = {
      metadata: { name: 'sig', checksum: `sha256-${'ab'.repeat(32)}` },
      jobs: [
        {
          id: 'wait@dev.smoke',
          dependsOn: [],
          steps: [
            {
              name: 'wait',
              // The step writes a marker when the forwarded signal reaches it.
              run: `trap 'echo got > trapped; exit 9' INT TERM; echo ready > ready; while :; do sleep 0.05; done`
            }
          ]
        }
      ]
    }
    writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(plan))
    let pid = 0
    const running = orun(['run', 'plan.json', '--job', 'wait@dev.smoke'], dir, {}, p => (pid = p))
    const deadline = Date.now() + 10_000
    while (!existsSync(path.join(dir, 'ready')) && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    process.kill(pid, signal)
    const result = await running
    expect(result.code).toBe(exitCode)
    expect(readFileSync(path.join(dir, 'trapped'), 'utf8')).toBe('got\n')
  })
})

describe('orun run: orun 2.54 behaviour', () => {
  const fixture = (name: string) => readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8')
  const gha = { GITHUB_ACTIONS: 'true' }

  /** A dir holding plan.json: the fixture, with every step's run replaced when given. */
  function planDir(name: string, run?: string, patch: Record<string, unknown> = {}): string {
    const dir = newDir()
    const plan = JSON.parse(fixture(name))
    if (run !== undefined)
      for (const job of plan.jobs) job.steps = [{ id: 'main', name: 'main', run }]
    writeFileSync(path.join(dir, 'plan.json'), JSON.stringify({ ...plan, ...patch }))
    // The checkout holds each job's path: orun runs the job there.
    for (const job of plan.jobs) mkdirSync(path.join(dir, job.path ?? '.'), { recursive: true })
    return dir
  }

  test('run --help lists --isolation, --all and --local; ORUN_STANDIN_RUN_WITHOUT removes them', async () => {
    const help = await orun(['run', '--help'], scratch)
    expect(help.stdout).toMatch(/^ +--isolation string +Per-job workspace isolation/m)
    expect(help.stdout).toMatch(/^Global Flags:\n +--all +do not scope/m)
    const older = { ORUN_STANDIN_RUN_WITHOUT: 'isolation,all' }
    const old = await orun(['run', '--help'], scratch, older)
    expect(old.stdout).not.toMatch(/--isolation|--all/)
    expect(old.stdout).toContain('--local')
    const refused = await orun(['run', 'p.json', '--job=x', '--isolation', 'none'], scratch, older)
    expect(refused).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('unknown flag: --isolation')
    })
  })

  test('runs a dotted-id job of an orun.io/v1 plan, --job=<id> form, with the ORUN_* job variables', async () => {
    const dir = planDir(
      'orun254-matrix',
      'echo "job=$ORUN_JOB_ID uid=$ORUN_JOB_UID run=$ORUN_JOB_RUN_ID c=$ORUN_COMPONENT e=$ORUN_ENVIRONMENT"'
    )
    const result = await orun(
      [
        'run',
        'plan.json',
        '--job=foundation.dev.plan-apply',
        '--exec-id=x1',
        '--all',
        '--isolation',
        'none'
      ],
      dir,
      gha
    )
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(
      'job=foundation.dev.plan-apply uid=job_ba97a4ad4356_0edd89848016 run=x1/job_ba97a4ad4356_0edd89848016 c=foundation e=dev\n'
    )
    expect(result.stdout).toMatch(/✓ Plan apply completed · /)
  })

  test('a failed step: ::error:: with the check name after its group; fail-fast exits non-zero', async () => {
    const dir = planDir('orun254-matrix', 'echo "::warning::from the step"; exit 3')
    const result = await orun(
      ['run', 'plan.json', '--job=foundation.dev.plan-apply', '--all'],
      dir,
      gha
    )
    expect(result.code).toBe(3)
    expect(result.stdout).toMatch(
      /::stop-commands::orun-stop-foundation\.dev\.plan-apply\n::warning::from the step\n::orun-stop-foundation\.dev\.plan-apply::\n::endgroup::\n::error::foundation · dev · Plan apply › main: exit status 3\n/
    )
    expect(result.stdout).not.toContain('completed ·')
    expect(result.stderr).toBe('Error: job foundation.dev.plan-apply failed (fail-fast enabled)\n')
  })

  test('without --all, a component.yaml at or above the cwd drops a job of another component: exit 0, silent', async () => {
    const dir = planDir('orun254-matrix', 'echo ran > ran.txt')
    const sub = path.join(dir, 'apps', 'web-console')
    // job.path is relative to the working directory: apps/foundation below sub.
    const jobDir = path.join(sub, 'apps', 'foundation')
    mkdirSync(jobDir, { recursive: true })
    writeFileSync(path.join(dir, 'component.yaml'), 'name: web-console\n')
    const args = ['run', path.join(dir, 'plan.json'), '--job=foundation.dev.plan-apply']
    const dropped = await orun(args, sub, gha)
    expect(dropped).toEqual({ code: 0, stdout: '', stderr: '' })
    expect(existsSync(path.join(jobDir, 'ran.txt'))).toBe(false)
    const all = await orun([...args, '--all', '--isolation', 'none'], sub, gha)
    expect(all.code).toBe(0)
    expect(existsSync(path.join(jobDir, 'ran.txt'))).toBe(true)
  })

  test('concurrent path (concurrency > 1): unmet dependencies leave the job waiting, exit 0; sequential refuses', async () => {
    const dir = planDir('orun254-matrix', 'echo ran > ran.txt')
    const args = ['run', 'plan.json', '--job=api-edge.dev.deploy', '--all', '--isolation', 'none']
    const waiting = await orun(args, dir, gha)
    expect(waiting.code).toBe(0)
    expect(waiting.stdout).toMatch(
      /^\n✓ Done in \d+\.\ds\n {2}1 waiting\n\n✓ Execution completed\n/
    )
    expect(existsSync(path.join(dir, 'ran.txt'))).toBe(false)

    const sequential = planDir('orun254-matrix', 'true', {
      execution: { concurrency: 1, failFast: true }
    })
    const refused = await orun(args, sequential, gha)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toBe(
      'cannot run api-edge.dev.deploy: dependencies not completed (foundation.dev.plan-apply)\n'
    )
  })

  test('without --isolation none and concurrency > 1, the job runs in a copy under .orun/runs/ whose outputs are discarded', async () => {
    const dir = planDir('orun254-matrix', 'echo "cwd=$(pwd)"; ls ../..; echo out > output.txt')
    mkdirSync(path.join(dir, 'node_modules'))
    writeFileSync(path.join(dir, 'source.txt'), 'source\n')
    const args = ['run', 'plan.json', '--job=foundation.dev.plan-apply', '--all', '--exec-id=e7']
    const copied = await orun(args, dir, gha)
    expect(copied.code).toBe(0)
    // The job's path (apps/foundation) is applied inside the copy.
    expect(copied.stdout).toContain(
      `cwd=${path.join(dir, '.orun', 'runs', 'e7', 'foundation.dev.plan-apply', 'work', 'apps', 'foundation')}\n`
    )
    expect(copied.stdout).toContain('source.txt\n')
    expect(copied.stdout).not.toContain('node_modules')
    expect(existsSync(path.join(dir, 'apps', 'foundation', 'output.txt'))).toBe(false)
    expect(existsSync(path.join(dir, '.orun', 'runs', 'e7'))).toBe(false)
    expect(readFileSync(path.join(dir, '.gitignore'), 'utf8')).toBe('.orun/runs/\n')

    const inTree = await orun([...args, '--isolation', 'none'], dir, gha)
    expect(inTree.stdout).toContain(`cwd=${path.join(dir, 'apps', 'foundation')}\n`)
    expect(readFileSync(path.join(dir, 'apps', 'foundation', 'output.txt'), 'utf8')).toBe('out\n')
  })

  test('GitHub Actions mode moves HOME and RUNNER_TEMP to a per-job temp dir', async () => {
    const dir = planDir('single', 'echo "home=$HOME temp=$RUNNER_TEMP"')
    const result = await orun(['run', 'plan.json', '--job=solo@dev.smoke', '--all'], dir, {
      ...gha,
      HOME: dir,
      RUNNER_TEMP: dir
    })
    const [, home, temp] = /home=(\S+) temp=(\S+)/.exec(result.stdout)!
    expect(home).toBe(temp)
    expect(home).not.toBe(dir)
    expect(existsSync(home)).toBe(false) // removed after the job
  })

  test("secretRefs resolve from ORUN_SECRET_<KEY> only; a missing required one fails with orun's text", async () => {
    const dir = planDir('orun254-secret-refs', 'echo "url=$DATABASE_URL dsn=[$SENTRY_DSN]"')
    const args = ['run', 'plan.json', '--job=db.stage.migrate', '--all', '--isolation', 'none']
    const missing = await orun(args, dir, gha)
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe(
      '  ✗ db.stage.migrate: secret resolution failed: local runs resolve secrets only from ' +
        'ORUN_SECRET_<KEY> overrides; missing: ORUN_SECRET_DATABASE_URL (or run against Orun Cloud: orun auth login)\n' +
        'Error: job db.stage.migrate failed (fail-fast enabled)\n'
    )
    const dump = path.join(dir, 'env.json')
    const set = await orun(args, dir, {
      ...gha,
      ORUN_SECRET_DATABASE_URL: 'postgres://secret-1234',
      ORUN_STANDIN_DUMP_ENV: dump
    })
    expect(set.code).toBe(0)
    expect(set.stdout).toContain('url=*** dsn=[]\n')
    expect(JSON.parse(readFileSync(dump, 'utf8')).ORUN_SECRET_DATABASE_URL).toBe(
      'postgres://secret-1234'
    )
  })
})

// Each behaviour below is pinned to the orun release note it comes from (shared spec
// orun-cli.md, "Since v2.54"); ORUN_STANDIN_VERSION picks the release.
describe('orun 2.55 to 2.75, by release note', () => {
  const V254 = { ORUN_STANDIN_VERSION: '2.54.0' }
  const V275 = { ORUN_STANDIN_VERSION: '2.75.0' }
  const gitIn =
    (dir: string) =>
    (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
        cwd: dir,
        encoding: 'utf8'
      })

  test('v2.72.1: identical inputs compile to byte-identical plans without generatedAt; 2.54 plans differ', async () => {
    const dir = demoDir()
    const compileTo = async (file: string, env: Record<string, string>) => {
      const result = await orun(['plan', '-o', file], dir, env)
      expect(result.code).toBe(0)
      return readFileSync(path.join(dir, file), 'utf8')
    }
    const first = await compileTo('a.json', V275)
    const second = await compileTo('b.json', V275)
    expect(second).toBe(first)
    const plan = JSON.parse(first) as Plan
    expect(plan.metadata).not.toHaveProperty('generatedAt')
    expect(plan.jobs.every(j => typeof j.uid === 'string')).toBe(true)

    const old = JSON.parse(await compileTo('c.json', V254)) as Plan
    await new Promise(resolve => setTimeout(resolve, 1100)) // generatedAt has whole seconds
    const older = JSON.parse(await compileTo('d.json', V254)) as Plan
    expect(older.metadata.checksum).not.toBe(old.metadata.checksum)
  })

  test('v2.71: every job has a dense 0-based index, which the --github-output matrix carries', async () => {
    const dir = demoDir()
    const outputFile = path.join(dir, 'github-output')
    const gh = { GITHUB_OUTPUT: outputFile, GITHUB_RUN_ID: '77', GITHUB_RUN_ATTEMPT: '2' }
    const result = await orun(['plan', '-o', 'plan.json', '--github-output'], dir, {
      ...V275,
      ...gh
    })
    expect(result.code).toBe(0)
    const plan = readPlan(path.join(dir, 'plan.json'))
    expect(plan.jobs.map(j => j.index)).toEqual([0, 1, 2, 3, 4, 5])
    const output = readFileSync(outputFile, 'utf8')
    const matrix = JSON.parse(/^matrix<<EOF\n(.*)\nEOF$/m.exec(output)![1]) as {
      include: Array<{ id: string; index: number }>
    }
    expect(matrix.include.map(e => [e.id, e.index])).toEqual(plan.jobs.map(j => [j.id, j.index]))
    expect(output).toContain(`plan_id=${planIdOf(plan)}\nexec_id=gha-77-2-${planIdOf(plan)}\n`)

    const old = newDir()
    copyFileSync(path.join(dir, 'intent.yaml'), path.join(old, 'intent.yaml'))
    expect((await compile(old, [], '2.54.0')).jobs.some(j => 'index' in j)).toBe(false)
  })

  test('v2.75: the plan summary is one line, and object-model diagnostics print only with --debug', async () => {
    const dir = demoDir()
    const plain = await orun(['plan', '-o', 'plan.json'], dir, V275)
    const planId = planIdOf(readPlan(path.join(dir, 'plan.json')))
    expect(plain).toEqual({
      code: 0,
      stdout: `✓ Plan ${planId} · 3 components × 2 envs → 6 jobs\n`,
      stderr: ''
    })
    const debug = await orun(['plan', '-o', 'plan.json', '--debug'], dir, V275)
    expect(debug.stderr).toMatch(/^object-model: source=/)
    const coloured = await orun(['plan', '-o', 'plan.json'], dir, { ...V275, CLICOLOR_FORCE: '1' })
    expect(coloured.stdout).toContain('\x1b[32m✓\x1b[0m Plan ')
  })

  test('v2.75: orun run ends with the runner summary, no Execution block, for a success, a failure and a wait', async () => {
    const dir = planDirOf('orun254-matrix', 'exit 0')
    const run = (job: string, env: Record<string, string> = {}) =>
      orun(['run', 'plan.json', `--job=${job}`, '--all', '--isolation', 'none'], dir, {
        ...V275,
        GITHUB_ACTIONS: 'true',
        ...env
      })
    // Before its dependency ran in this state: waiting.
    const waiting = await run('api-edge.dev.deploy')
    expect(waiting.stdout).toMatch(/^\n✓ Done in \d+\.\ds\n {2}1 waiting\n$/)
    const done = await run('foundation.dev.plan-apply')
    expect(done.code).toBe(0)
    expect(done.stdout).toMatch(/\n✓ Done in \d+\.\ds\n {2}1 succeeded\n$/)
    const noFailFast = planDirOf('orun254-matrix', 'exit 4', {
      execution: { concurrency: 1, failFast: false }
    })
    const failed = await orun(
      ['run', 'plan.json', '--job=foundation.dev.plan-apply', '--all', '--isolation', 'none'],
      noFailFast,
      { ...V275, GITHUB_ACTIONS: 'true' }
    )
    expect(failed.code).toBe(0)
    expect(failed.stdout).toMatch(/\n✗ Failed in \d+\.\ds\n {2}1 failed\n$/)
    const coloured = await run('foundation.dev.plan-apply', { CLICOLOR_FORCE: '1' })
    const ESC = '\x1b'
    expect(coloured.stdout).toMatch(
      new RegExp(
        `\\n${ESC}\\[32m✓${ESC}\\[0m Done in \\d+\\.\\ds\\n {2}${ESC}\\[2m1 succeeded${ESC}\\[0m\\n$`
      )
    )
  })

  test('v2.71: orun run init creates, then joins, the run without claiming a job; 2.54 has no such command', async () => {
    const dir = planDirOf('orun254-matrix', 'exit 0')
    const init = (env: Record<string, string>) =>
      orun(['run', 'init', 'plan.json', '--exec-id', 'e-init'], dir, env)
    const created = await init(V275)
    expect(created.code).toBe(0)
    expect(created.stdout).toMatch(/^✓ run e-init ready \(created, plan ba97a4ad4356, 6 jobs\)\n$/)
    const joined = await init(V275)
    expect(joined.stdout).toMatch(/^✓ run e-init ready \(joined, /)
    const state = JSON.parse(readFileSync(path.join(dir, '.orun', 'state', 'e-init.json'), 'utf8'))
    expect(state.completed).toEqual([]) // nothing claimed or run
    expect((await orun(['run', '--help'], dir, V275)).stdout).toContain('orun run init')
    const before = await init({ ORUN_STANDIN_VERSION: '2.70.0' })
    expect(before.code).toBe(2)
    expect((await orun(['run', '--help'], dir, V254)).stdout).not.toContain('orun run init')
  })

  test('v2.61: orun run takes --retry (a CI re-run); 2.54 refuses it as an unknown flag', async () => {
    const dir = planDirOf('orun254-matrix', 'exit 0')
    const args = ['run', 'plan.json', '--job=foundation.dev.plan-apply', '--all', '--retry']
    expect((await orun(args, dir, { ORUN_STANDIN_VERSION: '2.61.0' })).code).toBe(0)
    expect((await orun(['run', '--help'], dir, V275)).stdout).toMatch(/^ +--retry /m)
    const old = await orun(args, dir, V254)
    expect(old).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown flag: --retry') })
  })

  test('v2.62: change.inputs globs mark a component changed; --no-catalog-refresh stops without a catalog', async () => {
    const intent = `
name: inputs
environments: [dev]
components:
  - name: api
    composition: helm
    path: apps/api
    change: { inputs: ['shared/**/*.proto', 'VERSION'] }
    run: 'true'
  - name: web
    composition: helm
    path: apps/web
    run: 'true'
`
    const dir = newDir(intent)
    const git = gitIn(dir)
    mkdirSync(path.join(dir, 'shared', 'rpc'), { recursive: true })
    writeFileSync(path.join(dir, 'shared', 'rpc', 'api.proto'), 'v1\n')
    writeFileSync(path.join(dir, 'apps', 'web', 'x'), 'v1\n')
    git('init', '-q')
    git('add', '.')
    git('commit', '-qm', 'one')
    writeFileSync(path.join(dir, 'shared', 'rpc', 'api.proto'), 'v2\n')
    git('commit', '-qam', 'two')
    const ids = (plan: Plan) => plan.jobs.map(j => j.id)
    expect(ids(await compile(dir, ['--changed'], '2.62.0'))).toEqual(['api.dev.smoke'])
    expect(ids(await compile(dir, ['--changed'], '2.54.0'))).toEqual([])
    const stop = await orun(
      ['plan', '--changed', '--no-catalog-refresh', '-o', 'p.json'],
      dir,
      V275
    )
    expect(stop.code).toBe(1)
    expect(stop.stderr).toMatch(/^Error: --changed needs a catalog snapshot/)
    const old = await orun(['plan', '--changed', '--no-catalog-refresh'], dir, V254)
    expect(old.code).toBe(2)
  })

  test('job.path: the job runs in that directory of the tree; a missing one fails the step like orun', async () => {
    const dir = newDir(ENV_INTENT)
    await compile(dir, [], '2.75.0')
    const run = (job: string) =>
      orun(['run', 'plan.json', '--job', job, '--isolation', 'none', '--exec-id', 'p'], dir, V275)
    const ran = await run('foundation.dev.smoke')
    expect(ran.code).toBe(0)
    expect(ran.stdout).toContain(`PWD=${path.join(dir, 'apps', 'foundation')}\n`)
    rmSync(path.join(dir, 'apps', 'db'), { recursive: true })
    const missing = await run('db.dev.smoke')
    expect(missing.code).toBe(1)
    expect(missing.stdout).toContain(
      `--- step smoke failed with chdir ${path.join(dir, 'apps', 'db')}: no such file or directory`
    )
    expect(missing.stderr).toContain('file/path not found from cwd')
  })
})

describe('orun validate', () => {
  test('a valid intent: orun’s steps, exit 0', async () => {
    const dir = demoDir()
    const result = await orun(['validate'], dir)
    expect(result).toEqual({
      code: 0,
      stdout:
        '□ Validating intent...\n✓ Intent is valid\n□ Normalizing intent...\n✓ All validation passed\n',
      stderr: ''
    })
  })

  test('yaml.v3 texts: a syntax error names its line; values of the wrong type each name theirs', async () => {
    const syntax = newDir(
      'name: x\nenvironments: [dev]\ncomponents:\n  - name: a\n   composition: t\n'
    )
    const broken = await orun(['validate'], syntax)
    expect(broken.code).toBe(1)
    expect(broken.stderr).toMatch(
      /^✕ failed to load intent: failed to parse intent YAML: yaml: line 5: .+\n$/
    )
    const typed = newDir(
      [
        'name: x',
        'environments: [dev]',
        'components:',
        '  - name: a',
        '    composition: t',
        '    run: echo',
        '    dependsOn: foundation',
        '  - name: b',
        '    composition: t',
        '    run: echo',
        '    env: [1]'
      ].join('\n')
    )
    const wrong = await orun(['validate'], typed)
    expect(wrong.stderr).toBe(
      '✕ failed to load intent: failed to parse intent YAML: yaml: unmarshal errors:\n' +
        '  line 7: cannot unmarshal !!str `foundation` into []string\n' +
        '  line 11: cannot unmarshal !!seq into map[string]string\n'
    )
    const duplicate = newDir(
      'environments: [dev]\ncomponents:\n  - {name: a, composition: t, run: x}\n  - {name: a, composition: t, run: x}\n'
    )
    expect((await orun(['validate'], duplicate)).stderr).toBe(
      '✕ normalization failed: duplicate component name: a\n'
    )
  })

  test('ORUN_STANDIN_NO_VALIDATE=1: an orun without validate (not in --help, unknown command)', async () => {
    const env = { ORUN_STANDIN_NO_VALIDATE: '1' }
    expect((await orun(['--help'], scratch)).stdout).toMatch(/^ {2}validate /m)
    expect((await orun(['--help'], scratch, env)).stdout).not.toContain('validate')
    expect((await orun(['validate'], scratch, env)).code).toBe(2)
  })
})

function planDirOf(name: string, run: string, patch: Record<string, unknown> = {}): string {
  const dir = newDir()
  const plan = JSON.parse(readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8'))
  for (const job of plan.jobs) {
    job.steps = [{ id: 'main', name: 'main', run }]
    mkdirSync(path.join(dir, job.path ?? '.'), { recursive: true })
  }
  writeFileSync(path.join(dir, 'plan.json'), JSON.stringify({ ...plan, ...patch }))
  return dir
}
