import { afterAll, describe, expect, test } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { parsePlan, planIdFromChecksum, type PlanFile, type PlanJob } from '../src/plan/model.js'
import {
  DEFAULT_RUN_ATTEMPT,
  DEFAULT_RUN_ID,
  REPO_ROOT,
  STANDIN_DIR,
  cleanupActionProcesses,
  inputEnvName,
  parseFileCommands,
  runActionProcess,
  type ActionProcessResult
} from '../testing/action-process.js'
import { errorLines, expectCleanFailure } from '../testing/expect-failure.js'

// Runs the bundled plan action (dist/plan/index.js) as a process, as GitHub would, with the
// stand-in orun compiling the demo intent.

const PLAN_BUNDLE = 'dist/plan/index.js'
const FIXTURES = path.resolve(REPO_ROOT, '..', 'shared', 'fixtures', 'plans')
const DEMO_INTENT = path.join(REPO_ROOT, 'demo', 'intent', 'intent.yaml')
const PATH_WITH_STANDIN = `${STANDIN_DIR}${path.delimiter}${process.env.PATH ?? ''}`

const workspaces: string[] = []
afterAll(() => {
  cleanupActionProcesses()
  for (const dir of workspaces) rmSync(dir, { recursive: true, force: true })
})

/** A fresh workspace; with the demo intent.yaml unless another intent text is given. */
function workspace(intent: string | null = readFileSync(DEMO_INTENT, 'utf8')): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'orun-plan-action-'))
  workspaces.push(dir)
  if (intent !== null) writeFileSync(path.join(dir, 'intent.yaml'), intent)
  return dir
}

/** The plan action compiling with the stand-in orun, without an artifact upload. */
function runPlan(
  inputs: Record<string, string>,
  cwd?: string,
  env: Record<string, string> = {}
): Promise<ActionProcessResult> {
  return runActionProcess(PLAN_BUNDLE, {
    inputs: { 'orun-path': STANDIN_DIR, upload: 'false', ...inputs },
    env: { PATH: PATH_WITH_STANDIN, ...env },
    cwd
  })
}

/** A clean user failure that also set no outputs. Returns the annotation text. */
function expectUserFailure(result: ActionProcessResult): string {
  const message = expectCleanFailure(result)
  expect(result.outputs).toEqual({})
  return message
}

/** Like expectUserFailure, and the message is on one line (core encodes newlines as %0A). */
function expectOneLineFailure(result: ActionProcessResult): string {
  const message = expectUserFailure(result)
  expect(message).not.toContain('%0A')
  return message
}

interface MatrixEntry {
  job: string
  env: string
  component: string
  name: string
  'runs-on': string
}

/** Plan jobs from a plan file, generated: `count` independent jobs over two environments. */
function generatedPlan(count: number): PlanFile {
  const jobs: PlanJob[] = Array.from({ length: count }, (_, k) => ({
    id: `svc${k}@${k % 2 ? 'prod' : 'dev'}.smoke`,
    component: `svc${k}`,
    environment: k % 2 ? 'prod' : 'dev',
    name: 'smoke',
    dependsOn: k >= 2 ? [`svc${k - 2}@${k % 2 ? 'prod' : 'dev'}.smoke`] : [],
    steps: [{ id: 'smoke', run: 'true' }]
  }))
  return { metadata: { name: 'big', checksum: `sha256-${'7'.repeat(64)}` }, jobs }
}

describe('plan action compiling intent.yaml with orun', () => {
  test('orun 2.75 (coloured output): each matrix entry carries the job index; a second compile gives the same plan id', async () => {
    const dir = workspace()
    const env = { ORUN_STANDIN_VERSION: '2.75.0', CLICOLOR_FORCE: '1' }
    const first = await runPlan({}, dir, env)
    expect(first.exitCode).toBe(0)
    const jobs = JSON.parse(first.outputs.jobs) as Array<MatrixEntry & { index: number }>
    expect(jobs.map(entry => entry.index).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5])
    expect(JSON.parse(first.outputs.matrix).include).toEqual(jobs)
    const second = await runPlan({}, dir, env)
    expect(second.outputs['plan-id']).toBe(first.outputs['plan-id'])
  })

  test('demo intent: ids, jobs in topological order, matrix, plan file and summary', async () => {
    const dir = workspace()
    const result = await runPlan({}, dir, { GITHUB_RUN_ID: '555', GITHUB_RUN_ATTEMPT: '3' })
    expect(result.stderr).toBe('')
    expect(result.exitCode).toBe(0)
    const { outputs } = result

    // The plan id is the stand-in's checksum of what it compiled.
    const stored = JSON.parse(
      readFileSync(path.join(dir, '.orun', 'plans', 'remote-state-e2e.json'), 'utf8')
    ) as PlanFile
    expect(outputs['plan-id']).toMatch(/^[0-9a-f]{12}$/)
    expect(outputs['plan-id']).toBe(planIdFromChecksum(stored.metadata.checksum))
    expect(outputs['run-id']).toBe(`gha-555-3-${outputs['plan-id']}`)
    expect(outputs['job-count']).toBe('6')
    expect(outputs['artifact-name']).toBe('')

    // Today's orun shape: dotted ids, checkName and runsOn (the stand-in is orun 2.54.0).
    const jobs = JSON.parse(outputs.jobs) as MatrixEntry[]
    const entry = (component: string, env: string) => ({
      job: `${component}.${env}.smoke`,
      env,
      component,
      name: `${component} · ${env} · Smoke`,
      'runs-on': 'ubuntu-latest'
    })
    expect(jobs).toEqual([
      entry('foundation', 'dev'),
      entry('api', 'dev'),
      entry('web', 'dev'),
      entry('foundation', 'stage'),
      entry('api', 'stage'),
      entry('web', 'stage')
    ])
    expect(JSON.parse(outputs['job-ids'])).toEqual(jobs.map(entry => entry.job))
    expect(JSON.parse(outputs.matrix)).toEqual({ include: jobs })

    // The plan file is the compiled plan, outside the workspace, and its order is topological.
    const planFile = outputs['plan-file']
    expect(path.isAbsolute(planFile)).toBe(true)
    expect(planFile.startsWith(dir)).toBe(false)
    expect(existsSync(planFile)).toBe(true)
    const plan = parsePlan(readFileSync(planFile, 'utf8'), planFile)
    expect(plan.id).toBe(outputs['plan-id'])
    const position = new Map(jobs.map((entry, index) => [entry.job, index]))
    for (const job of plan.order) {
      for (const dep of job.dependsOn ?? []) {
        expect(position.get(dep)!).toBeLessThan(position.get(job.id)!)
      }
    }

    // orun got the flags the inputs asked for, as argv.
    expect(result.stdout).toContain(`orun plan --output ${planFile} --all`)

    const summary = result.summary
    expect(summary).toContain(`| \`${outputs['plan-id']}\` | \`${outputs['run-id']}\` | 6 |`)
    expect(summary).toMatch(/```mermaid\nflowchart LR\n/)
    expect(summary).toMatch(/subgraph env\d+\["dev"\]/)
    expect(summary).toMatch(/subgraph env\d+\["stage"\]/)
    expect(summary.match(/^ {2}j\d+ --> j\d+$/gm)).toHaveLength(4)
    expect(summary).toContain(
      '| `api.stage.smoke` | api · stage · Smoke | ubuntu-latest | `foundation.stage.smoke` |'
    )
    expect(summary).not.toContain('### Secrets')
  })

  test('an older orun (comp@env.job ids, no checkName/runsOn): name built from the fields, runs-on empty', async () => {
    const result = await runPlan({ environments: 'dev' }, workspace(), {
      ORUN_STANDIN_VERSION: '1.10.0'
    })
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.outputs.jobs)).toEqual([
      {
        job: 'foundation@dev.smoke',
        env: 'dev',
        component: 'foundation',
        name: 'foundation · dev · smoke',
        'runs-on': ''
      },
      {
        job: 'api@dev.smoke',
        env: 'dev',
        component: 'api',
        name: 'api · dev · smoke',
        'runs-on': ''
      },
      {
        job: 'web@dev.smoke',
        env: 'dev',
        component: 'web',
        name: 'web · dev · smoke',
        'runs-on': ''
      }
    ])
    expect(result.summary).toContain(
      '| `api@dev.smoke` | api · dev · smoke |  | `foundation@dev.smoke` |'
    )
  })

  test("'environments: dev' compiles only the dev jobs", async () => {
    const result = await runPlan({ environments: 'dev' }, workspace())
    expect(result.exitCode).toBe(0)
    expect(result.outputs['job-count']).toBe('3')
    expect(JSON.parse(result.outputs['job-ids'])).toEqual([
      'foundation.dev.smoke',
      'api.dev.smoke',
      'web.dev.smoke'
    ])
    expect(result.stdout).toContain('--all --env dev')
  })

  test("'components' and 'environments' narrow the plan together", async () => {
    const result = await runPlan({ components: 'api\nweb', environments: 'stage' }, workspace())
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.outputs['job-ids'])).toEqual(['api.stage.smoke', 'web.stage.smoke'])
    expect(result.stdout).toContain('--env stage --component api --component web')
  })

  test("'run-id' overrides the derived run id", async () => {
    const result = await runPlan({ 'run-id': 'nightly-42', environments: 'dev' }, workspace())
    expect(result.exitCode).toBe(0)
    expect(result.outputs['run-id']).toBe('nightly-42')
    expect(result.summary).toContain('`nightly-42`')
  })

  test('orun is found through orun-path given as the binary itself', async () => {
    const result = await runPlan(
      { 'orun-path': path.join(STANDIN_DIR, 'orun'), components: 'foundation' },
      workspace()
    )
    expect(result.exitCode).toBe(0)
    expect(result.outputs['job-count']).toBe('2')
    expect(result.stdout).toContain('orun plan (orun 2.54.0)')
  })

  test("'args' passes extra flags as argv", async () => {
    const result = await runPlan({ args: '--component api' }, workspace())
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.outputs['job-ids'])).toEqual(['api.dev.smoke', 'api.stage.smoke'])
  })

  test("'args' values with spaces, quotes and shell syntax reach orun as single words, unrun", async () => {
    const dir = workspace()
    const semicolon = await runPlan({ args: '--component "api; touch pwned1"' }, dir)
    // One argv word, spaces and ';' included: orun saw a component with that exact name.
    expect(expectUserFailure(semicolon)).toContain('unknown component "api; touch pwned1"')

    const substitution = await runPlan({ args: "--name '$(touch pwned2)'" }, dir)
    expect(expectUserFailure(substitution)).toContain('invalid plan name "$(touch pwned2)"')

    expect(existsSync(path.join(dir, 'pwned1'))).toBe(false)
    expect(existsSync(path.join(dir, 'pwned2'))).toBe(false)
  })

  test("an intent with a cycle fails with orun's own message", async () => {
    const dir = workspace(
      [
        'name: loop',
        'environments: [dev]',
        'components:',
        '  - { name: a, composition: helm, dependsOn: [b], run: "true" }',
        '  - { name: b, composition: helm, dependsOn: [a], run: "true" }',
        ''
      ].join('\n')
    )
    const message = expectUserFailure(await runPlan({}, dir))
    expect(message).toMatch(/^orun plan failed \(exit 1\) in /)
    expect(message).toContain(dir)
    expect(message).toMatch(/Error: intent\.yaml: dependency cycle: (a -> b -> a|b -> a -> b)/)
    expect(message).toMatch(/Fix intent\.yaml/)
  })

  test("a 'working-directory' that does not exist is named, before orun is installed", async () => {
    // No orun-path: reaching the installer would mean a download, which cannot work here.
    const dir = workspace()
    const result = await runActionProcess(PLAN_BUNDLE, {
      inputs: { 'working-directory': 'infra/missing', upload: 'false' },
      cwd: dir
    })
    const message = expectOneLineFailure(result)
    expect(message).toMatch(/^Input 'working-directory' is /)
    expect(message).toContain(path.join(dir, 'infra', 'missing'))
    expect(message).toMatch(/does not exist/)
  })

  test("'working-directory' is resolved against the workspace", async () => {
    const dir = workspace(null)
    mkdirSync(path.join(dir, 'deploy'))
    copyFileSync(DEMO_INTENT, path.join(dir, 'deploy', 'intent.yaml'))
    const result = await runPlan({ 'working-directory': 'deploy', environments: 'dev' }, dir)
    expect(result.exitCode).toBe(0)
    expect(result.outputs['job-count']).toBe('3')
    expect(existsSync(path.join(dir, 'deploy', '.orun', 'plans', 'remote-state-e2e.json'))).toBe(
      true
    )
  })
})

describe('plan action with plan-file', () => {
  // No orun-path and no orun on PATH: a given plan file must not need orun at all.
  const runWithPlanFile = (planFile: string, inputs: Record<string, string> = {}, cwd?: string) =>
    runActionProcess(PLAN_BUNDLE, {
      inputs: { 'plan-file': planFile, upload: 'false', ...inputs },
      cwd
    })

  test.each([
    ['remote-state-matrix', 6, '905f6efbdd89'],
    ['wide-deep', 40, 'bf1ab8bbf867'],
    ['single', 1, '5e0143d6b3b9'],
    ['failing-upstream', 3, '1ee28a631e0d'],
    ['orun254-matrix', 6, 'ba97a4ad4356'],
    ['orun254-secret-refs', 1, 'cf0230dd2d24']
  ])('%s: %i jobs, plan id %s', async (name, count, planId) => {
    const source = path.join(FIXTURES, `${name}.json`)
    const result = await runWithPlanFile(source)
    expect(result.exitCode).toBe(0)
    expect(result.outputs['plan-id']).toBe(planId)
    expect(result.outputs['run-id']).toBe(`gha-${DEFAULT_RUN_ID}-${DEFAULT_RUN_ATTEMPT}-${planId}`)
    expect(result.outputs['job-count']).toBe(String(count))
    // Expected from the raw file, not from the plan model under test: every job once, with its
    // own environment and component, each after all of its dependencies.
    const raw = JSON.parse(readFileSync(source, 'utf8')) as {
      jobs: Array<{ id: string; environment: string; component: string; dependsOn?: string[] }>
    }
    const jobs = JSON.parse(result.outputs.jobs) as MatrixEntry[]
    expect(jobs.map(entry => entry.job).sort()).toEqual(raw.jobs.map(job => job.id).sort())
    const position = new Map(jobs.map((entry, index) => [entry.job, index]))
    for (const job of raw.jobs) {
      const { job: id, env, component } = jobs[position.get(job.id)!]
      expect({ job: id, env, component }).toEqual({
        job: job.id,
        env: job.environment,
        component: job.component
      })
      for (const dep of job.dependsOn ?? []) {
        expect(position.get(dep)!).toBeLessThan(position.get(job.id)!)
      }
    }
    if (name !== 'wide-deep') {
      // These fixtures list their jobs in a topological order already: it is kept.
      expect(jobs.map(entry => entry.job)).toEqual(raw.jobs.map(job => job.id))
    }
    expect(JSON.parse(result.outputs.matrix)).toEqual({ include: jobs })
    // The plan file output is a byte-for-byte copy of the given one.
    expect(readFileSync(result.outputs['plan-file'], 'utf8')).toBe(readFileSync(source, 'utf8'))
  })

  test("orun254-matrix: each entry is named by the plan's checkName and runs on its runsOn", async () => {
    const result = await runWithPlanFile(path.join(FIXTURES, 'orun254-matrix.json'))
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.outputs.jobs)).toEqual([
      {
        job: 'foundation.dev.plan-apply',
        env: 'dev',
        component: 'foundation',
        name: 'foundation · dev · Plan apply',
        'runs-on': 'ubuntu-latest'
      },
      {
        job: 'api-edge.dev.deploy',
        env: 'dev',
        component: 'api-edge',
        name: 'api-edge · dev · Deploy',
        'runs-on': 'ubuntu-latest'
      },
      {
        job: 'web-console.dev.deploy',
        env: 'dev',
        component: 'web-console',
        name: 'web-console · dev · Deploy',
        'runs-on': 'ubuntu-latest'
      },
      {
        job: 'foundation.stage.plan-apply',
        env: 'stage',
        component: 'foundation',
        name: 'foundation · stage · Plan apply',
        'runs-on': 'ubuntu-latest'
      },
      {
        job: 'api-edge.stage.deploy',
        env: 'stage',
        component: 'api-edge',
        name: 'api-edge · stage · Deploy',
        'runs-on': 'ubuntu-latest'
      },
      {
        job: 'web-console.stage.deploy',
        env: 'stage',
        component: 'web-console',
        name: 'web-console · stage · Deploy',
        'runs-on': 'ubuntu-latest'
      }
    ])
    expect(result.summary).toContain(
      '| `web-console.dev.deploy` | web-console · dev · Deploy | ubuntu-latest | `api-edge.dev.deploy` |'
    )
  })

  test('single (sourceplane.io/v1): name from component · env · job name, runs-on empty', async () => {
    const result = await runWithPlanFile(path.join(FIXTURES, 'single.json'))
    expect(JSON.parse(result.outputs.jobs)).toEqual([
      {
        job: 'solo@dev.smoke',
        env: 'dev',
        component: 'solo',
        name: 'solo · dev · smoke',
        'runs-on': ''
      }
    ])
  })

  test('orun254-secret-refs: the summary lists each secret, the variable orun reads it from, and the env lines to add', async () => {
    const result = await runWithPlanFile(path.join(FIXTURES, 'orun254-secret-refs.json'))
    expect(result.exitCode).toBe(0)
    const summary = result.summary
    expect(summary).toContain('### Secrets')
    expect(summary).toContain(
      '| `db.stage.migrate` | `DATABASE_URL` | `ORUN_SECRET_DATABASE_URL` | `secret://stage/db/DATABASE_URL` | required |'
    )
    expect(summary).toContain(
      '| `db.stage.migrate` | `SENTRY_DSN` | `ORUN_SECRET_SENTRY_DSN` | `secret://stage/db/SENTRY_DSN` | optional |'
    )
    expect(summary).toContain(
      [
        '```yaml',
        'env:',
        '  ORUN_SECRET_DATABASE_URL: ${{ secrets.DATABASE_URL }}',
        '  ORUN_SECRET_SENTRY_DSN: ${{ secrets.SENTRY_DSN }} # optional',
        '```'
      ].join('\n')
    )
    // The secrets come before the job table, which is the part cut on huge plans.
    expect(summary.indexOf('### Secrets')).toBeLessThan(summary.indexOf('### Jobs'))
  })

  test('a relative plan-file is read from the workspace', async () => {
    const dir = workspace(null)
    mkdirSync(path.join(dir, 'plans'))
    copyFileSync(path.join(FIXTURES, 'single.json'), path.join(dir, 'plans', 'p.json'))
    const result = await runWithPlanFile('plans/p.json', {}, dir)
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.outputs['job-ids'])).toEqual(['solo@dev.smoke'])
  })

  test('compile inputs next to plan-file are ignored with a warning', async () => {
    const result = await runWithPlanFile(path.join(FIXTURES, 'single.json'), {
      environments: 'prod'
    })
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toMatch(/^::warning::'plan-file' is set, so the plan is not compiled/m)
    expect(result.outputs['job-count']).toBe('1')
  })

  test.each([
    [
      'invalid-cycle',
      /dependency cycle: a@dev\.smoke → b@dev\.smoke → c@dev\.smoke → a@dev\.smoke/
    ],
    ['invalid-dangling-dep', /job "a@dev\.smoke" depends on "ghost@dev\.smoke", which is not in/],
    ['invalid-duplicate-id', /two jobs with the id "a@dev\.smoke"/],
    ['invalid-no-checksum', /has no metadata\.checksum/],
    ['invalid-no-jobs-field', /has no "jobs" array/],
    ['invalid-not-json', /is not valid JSON/]
  ])('%s: exit 1 with a one-line error naming the file', async (name, pattern) => {
    const source = path.join(FIXTURES, `${name}.json`)
    const message = expectOneLineFailure(await runWithPlanFile(source))
    expect(message).toMatch(pattern)
    // The file the user gave, not the copy under RUNNER_TEMP.
    expect(message).toContain(`Plan file ${source}`)
  })

  test('a plan-file that does not exist is named', async () => {
    const dir = workspace(null)
    const message = expectOneLineFailure(await runWithPlanFile('no/such/plan.json', {}, dir))
    expect(message).toMatch(/^Input 'plan-file' points to /)
    expect(message).toContain(path.join(dir, 'no', 'such', 'plan.json'))
  })

  test('empty: job-count 0, jobs [], a notice, and nothing to upload even with upload: true', async () => {
    const result = await runActionProcess(PLAN_BUNDLE, {
      inputs: { 'plan-file': path.join(FIXTURES, 'empty.json') }
    })
    expect(result.exitCode).toBe(0)
    expect(errorLines(result)).toEqual([])
    expect(result.outputs['job-count']).toBe('0')
    expect(result.outputs.jobs).toBe('[]')
    expect(result.outputs['job-ids']).toBe('[]')
    expect(JSON.parse(result.outputs.matrix)).toEqual({ include: [] })
    expect(result.outputs['artifact-name']).toBe('')
    expect(result.stdout).toMatch(/^::notice::The plan has no jobs: nothing to run/m)
    expect(result.summary).toMatch(/nothing to run/)
  })

  test('upload: true without ACTIONS_RUNTIME_TOKEN says why it fails and what to do', async () => {
    const result = await runActionProcess(PLAN_BUNDLE, {
      inputs: { 'plan-file': path.join(FIXTURES, 'single.json'), upload: 'true' }
    })
    const message = expectOneLineFailure(result)
    expect(message).toContain('ACTIONS_RUNTIME_TOKEN is not set')
    expect(message).toContain("set 'upload: false'")
  })

  test('more jobs than a matrix holds: every output still set, with a warning naming the limit and the way out', async () => {
    const dir = workspace(null)
    writeFileSync(path.join(dir, 'max.json'), JSON.stringify(generatedPlan(256)))
    writeFileSync(path.join(dir, 'over.json'), JSON.stringify(generatedPlan(257)))

    const atLimit = await runWithPlanFile('max.json', {}, dir)
    expect(atLimit.exitCode).toBe(0)
    expect(atLimit.outputs['job-count']).toBe('256')
    expect(atLimit.stdout).not.toMatch(/^::warning::/m)

    const over = await runWithPlanFile('over.json', {}, dir)
    expect(over.exitCode).toBe(0)
    expect(errorLines(over)).toEqual([])
    const warnings = over.stdout.split('\n').filter(line => line.startsWith('::warning::'))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('The plan has 257 jobs')
    expect(warnings[0]).toContain('at most 256 jobs in one matrix')
    expect(warnings[0]).toContain("'environments'/'components'")
    expect(over.outputs['job-count']).toBe('257')
    const jobs = JSON.parse(over.outputs.jobs) as MatrixEntry[]
    expect(jobs).toHaveLength(257)
    expect(new Set(jobs.map(entry => entry.job)).size).toBe(257)
    expect(jobs[256]).toEqual({
      job: 'svc256@dev.smoke',
      env: 'dev',
      component: 'svc256',
      name: 'svc256 · dev · smoke',
      'runs-on': ''
    })
    expect(JSON.parse(over.outputs['job-ids'])).toHaveLength(257)
    expect(JSON.parse(over.outputs.matrix).include).toHaveLength(257)
    expect(over.outputs['plan-id']).toBe('777777777777')
  })
})

describe('plan action input checks', () => {
  test('an http backend-url that is not loopback is refused before anything else', async () => {
    // No intent, no orun: the backend URL must be the first thing that fails.
    const result = await runActionProcess(PLAN_BUNDLE, {
      inputs: {
        'backend-url': 'http://orun.example.com',
        'orun-path': '/nonexistent/orun',
        upload: 'false'
      },
      env: { PATH: PATH_WITH_STANDIN }
    })
    const message = expectOneLineFailure(result)
    expect(message).toMatch(/^Input 'backend-url' must be an https:\/\/ URL/)
    expect(message).toContain('http://orun.example.com')
    expect(result.stdout).not.toContain('[command]')
  })

  test('a malformed boolean input is named', async () => {
    const message = expectOneLineFailure(await runPlan({ upload: 'yes' }, workspace()))
    expect(message).toBe("Input 'upload' must be true or false, got 'yes'.")
  })

  test("'base' without 'changed' is refused", async () => {
    const message = expectOneLineFailure(await runPlan({ base: 'main' }, workspace()))
    expect(message).toMatch(/'base' and 'head' only apply with 'changed: true'/)
  })
})

describe('runActionProcess (the helper these tests rely on)', () => {
  test('input names become INPUT_ variables the way the runner names them', () => {
    expect(inputEnvName('plan-file')).toBe('INPUT_PLAN-FILE')
    expect(inputEnvName('my input')).toBe('INPUT_MY_INPUT')
  })

  test('file commands: heredocs (also multi-line) and name=value lines', () => {
    const text = [
      'plan-id<<ghadelimiter_1',
      'abc',
      'ghadelimiter_1',
      'multi<<EOF',
      'line one',
      'a=b',
      '',
      'EOF',
      'simple=x=y',
      'plan-id<<ghadelimiter_2',
      'def',
      'ghadelimiter_2',
      ''
    ].join('\n')
    expect(parseFileCommands(text)).toEqual({
      'plan-id': 'def',
      multi: 'line one\na=b\n',
      simple: 'x=y'
    })
    expect(() => parseFileCommands('x<<EOF\nno end\n')).toThrow(/no closing delimiter EOF/)
  })

  test("the parent's ACTIONS_*, INPUT_* and ORUN_* variables do not reach the action", async () => {
    const leaked = {
      ACTIONS_RUNTIME_TOKEN: 'leaked-token',
      'INPUT_RUN-ID': 'leaked-run-id',
      ORUN_BACKEND_URL: 'http://leaked.example.com'
    }
    const saved = Object.keys(leaked).map(key => [key, process.env[key]] as const)
    Object.assign(process.env, leaked)
    let result: ActionProcessResult
    let upload: ActionProcessResult
    try {
      result = await runActionProcess(PLAN_BUNDLE, {
        inputs: { 'plan-file': path.join(FIXTURES, 'single.json'), upload: 'false' }
      })
      upload = await runActionProcess(PLAN_BUNDLE, {
        inputs: { 'plan-file': path.join(FIXTURES, 'single.json'), upload: 'true' }
      })
    } finally {
      for (const [key, value] of saved) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
    }
    // A leaked ORUN_BACKEND_URL would be refused (http), a leaked INPUT_RUN-ID would be used.
    expect(result.exitCode).toBe(0)
    expect(result.outputs['run-id']).toBe(
      `gha-${DEFAULT_RUN_ID}-${DEFAULT_RUN_ATTEMPT}-5e0143d6b3b9`
    )
    // A leaked ACTIONS_RUNTIME_TOKEN would have sent it to the artifact service instead.
    expect(expectOneLineFailure(upload)).toContain('ACTIONS_RUNTIME_TOKEN is not set')
  })
})

/** The demo intent with orun's trigger bindings: pull requests to main plan dev (changed only), pushes to main plan stage. */
const TRIGGER_INTENT = [
  'name: ci',
  'environments:',
  '  dev: { activation: { triggerRefs: [pull-request] } }',
  '  stage: { activation: { triggerRefs: [main-push] } }',
  'automation:',
  '  triggerBindings:',
  '    pull-request:',
  '      on: { provider: github, event: pull_request, actions: [opened, synchronize], baseBranches: [main] }',
  '    main-push:',
  '      on: { provider: github, event: push, branches: [main] }',
  'components:',
  '  - { name: foundation, composition: terraform, path: apps/foundation, run: "true" }',
  '  - { name: api, composition: helm, path: apps/api, dependsOn: [foundation], run: "true" }',
  ''
].join('\n')

/** Writes a GitHub event payload into dir and returns the env GitHub would set for it. */
function githubEvent(dir: string, name: string, payload: object): Record<string, string> {
  const file = path.join(dir, `${name}-event.json`)
  writeFileSync(file, JSON.stringify(payload))
  return { GITHUB_EVENT_NAME: name, GITHUB_EVENT_PATH: file }
}

const pullRequestTo = (base: string) => ({
  action: 'opened',
  pull_request: {
    base: { ref: base, sha: 'b'.repeat(40) },
    head: { ref: 'feature', sha: 'c'.repeat(40) }
  }
})

describe("plan action with 'from-ci: github'", () => {
  test('passes --from-ci github --event-file $GITHUB_EVENT_PATH; a matching binding picks the environment', async () => {
    const dir = workspace(TRIGGER_INTENT)
    const event = githubEvent(dir, 'push', {
      ref: 'refs/heads/main',
      before: 'a'.repeat(40),
      after: 'd'.repeat(40)
    })
    const result = await runPlan({ 'from-ci': 'github' }, dir, event)
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toContain(
      `orun plan --output ${result.outputs['plan-file']} --from-ci github --event-file ${event.GITHUB_EVENT_PATH} --all`
    )
    expect(JSON.parse(result.outputs['job-ids'])).toEqual([
      'foundation.stage.smoke',
      'api.stage.smoke'
    ])
  })

  test.each([
    ['2.54.0', {}],
    ['2.75.0, coloured', { ORUN_STANDIN_VERSION: '2.75.0', CLICOLOR_FORCE: '1' }]
  ])(
    "orun %s: an event no binding matches: orun's 'nothing to plan' is an empty plan, quoted in a notice",
    async (_version, orunEnv) => {
      const dir = workspace(TRIGGER_INTENT)
      const result = await runPlan({ 'from-ci': 'github' }, dir, {
        ...githubEvent(dir, 'pull_request', pullRequestTo('release')),
        ...orunEnv
      })
      expect(result.exitCode).toBe(0)
      expect(errorLines(result)).toEqual([])
      expect(result.outputs).toEqual({
        'plan-id': '',
        'run-id': '',
        jobs: '[]',
        'job-ids': '[]',
        'job-count': '0',
        matrix: '{"include":[]}',
        'plan-file': '',
        'artifact-name': '',
        workers: '[]'
      })
      const notices = result.stdout.split('\n').filter(line => line.startsWith('::notice::'))
      expect(notices).toEqual([
        '::notice::orun found nothing to plan for this event: "○ no trigger binding matched: github event pull_request action opened — nothing to plan". The jobs output is [].'
      ])
      expect(result.summary).toContain('orun found nothing to plan')
      expect(result.summary).toContain(
        'no trigger binding matched: github event pull_request action opened'
      )
    }
  )

  test("nothing to plan keeps a given 'run-id', and uploads nothing even with upload: true", async () => {
    const dir = workspace(TRIGGER_INTENT)
    const result = await runPlan(
      { 'from-ci': 'github', 'run-id': 'nightly-7', upload: 'true' },
      dir,
      githubEvent(dir, 'pull_request', pullRequestTo('release'))
    )
    // upload: true without ACTIONS_RUNTIME_TOKEN would fail if anything were uploaded.
    expect(result.exitCode).toBe(0)
    expect(result.outputs['run-id']).toBe('nightly-7')
    expect(result.outputs['artifact-name']).toBe('')
  })

  test('orun exiting 0 without the plan file and without saying why is an error, not an empty plan', async () => {
    // A later --output in 'args' wins in orun's flag parsing: the action's file is never written.
    const dir = workspace()
    const message = expectOneLineFailure(await runPlan({ args: '--output elsewhere.json' }, dir))
    expect(message).toMatch(
      /^orun plan exited 0 in .* but wrote no plan file to .* and did not say why/
    )
    expect(message).toContain("Check that 'args' does not override --output")
    expect(existsSync(path.join(dir, 'elsewhere.json'))).toBe(true)
  })

  test("an intent without automation.triggerBindings fails with orun's error", async () => {
    const dir = workspace()
    const message = expectUserFailure(
      await runPlan(
        { 'from-ci': 'github' },
        dir,
        githubEvent(dir, 'pull_request', pullRequestTo('main'))
      )
    )
    expect(message).toMatch(/^orun plan failed \(exit 1\) in /)
    expect(message).toContain('no trigger bindings defined in automation.triggerBindings')
  })

  test('a provider other than github is refused before orun runs', async () => {
    const message = expectOneLineFailure(await runPlan({ 'from-ci': 'gitlab' }, workspace()))
    expect(message).toBe(
      "Input 'from-ci' must be github (the CI whose event orun reads), got 'gitlab'. Remove it to compile without trigger bindings."
    )
  })

  test('without GITHUB_EVENT_PATH the input says what it needs', async () => {
    const message = expectOneLineFailure(
      await runPlan({ 'from-ci': 'github' }, workspace(TRIGGER_INTENT))
    )
    expect(message).toMatch(
      /^Input 'from-ci: github' needs the event file GitHub names in GITHUB_EVENT_PATH/
    )
  })
})

describe("plan action with 'changed: true' and git history", () => {
  /**
   * A repository holding TRIGGER_INTENT and two commits (the second changes apps/api), cloned
   * the way actions/checkout does: full history, or shallow with --depth.
   */
  function repository(): { origin: string; first: string; second: string } {
    const origin = workspace(null)
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
        cwd: origin,
        encoding: 'utf8'
      }).trim()
    writeFileSync(path.join(origin, 'intent.yaml'), TRIGGER_INTENT)
    for (const component of ['foundation', 'api']) {
      mkdirSync(path.join(origin, 'apps', component), { recursive: true })
      writeFileSync(path.join(origin, 'apps', component, 'main.tf'), 'v1\n')
    }
    git('init', '-q', '-b', 'main')
    git('add', '.')
    git('commit', '-qm', 'one')
    const first = git('rev-parse', 'HEAD')
    writeFileSync(path.join(origin, 'apps', 'api', 'main.tf'), 'v2\n')
    git('commit', '-qam', 'two')
    return { origin, first, second: git('rev-parse', 'HEAD') }
  }

  function clone(origin: string, depth?: number): string {
    const target = path.join(workspace(null), 'checkout')
    const depthArgs = depth ? ['--depth', String(depth)] : []
    execFileSync('git', ['clone', '-q', ...depthArgs, `file://${origin}`, target])
    return target
  }

  /** The push event of the second commit, as GitHub gives it to the plan job. */
  function pushEnv(dir: string, repo: { first: string; second: string }): Record<string, string> {
    return {
      ...githubEvent(path.dirname(dir), 'push', {
        ref: 'refs/heads/main',
        before: repo.first,
        after: repo.second
      }),
      GITHUB_SHA: repo.second
    }
  }

  test('a full clone: orun finds the changed component from the push event', async () => {
    const repo = repository()
    const dir = clone(repo.origin)
    const result = await runPlan({ changed: 'true', environments: 'dev' }, dir, pushEnv(dir, repo))
    expect(result.exitCode).toBe(0)
    expect(result.stdout).not.toMatch(/^::warning::/m)
    expect(JSON.parse(result.outputs['job-ids'])).toEqual(['api.dev.smoke'])
  })

  test("the quick start's 'from-ci: github' with 'changed: true': the binding's environments, changed components only", async () => {
    const repo = repository()
    const dir = clone(repo.origin)
    const env = pushEnv(dir, repo)
    const result = await runPlan({ 'from-ci': 'github', changed: 'true' }, dir, env)
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toContain(
      `--from-ci github --event-file ${env.GITHUB_EVENT_PATH} --all --changed`
    )
    expect(JSON.parse(result.outputs.jobs)).toEqual([
      {
        job: 'api.stage.smoke',
        env: 'stage',
        component: 'api',
        name: 'api · stage · Smoke',
        'runs-on': 'ubuntu-latest'
      }
    ])
  })

  test('a shallow clone (fetch-depth 1) fails naming fetch-depth: 0, where orun would silently plan zero jobs', async () => {
    const repo = repository()
    const dir = clone(repo.origin, 1)
    const env = pushEnv(dir, repo)
    const message = expectOneLineFailure(await runPlan({ changed: 'true' }, dir, env))
    expect(message).toBe(
      `Input 'changed: true' needs git history, but ${dir} is a shallow checkout: ` +
        "orun would find no changes and plan zero jobs. Fetch the whole history: 'actions/checkout' with 'fetch-depth: 0'."
    )
    // What the check prevents: orun itself (the stand-in, like orun) plans nothing, exit 0; also
    // from v2.62 on, where change.inputs globs widen what counts as a change (same git diff).
    for (const version of ['2.54.0', '2.75.0']) {
      const orun = execFileSync(
        path.join(STANDIN_DIR, 'orun'),
        ['plan', '--changed', '-o', 'unchecked.json'],
        {
          cwd: dir,
          env: { ...process.env, GITHUB_ACTIONS: 'true', ORUN_STANDIN_VERSION: version, ...env },
          encoding: 'utf8'
        }
      )
      expect(orun).toContain('0 components × 0 envs → 0 jobs')
    }
  })

  test('a shallow clone that holds the merge base of explicit refs (fetch-depth 2, base HEAD~1) is let through', async () => {
    const repo = repository()
    const dir = clone(repo.origin, 2)
    const result = await runPlan(
      { changed: 'true', base: 'HEAD~1', environments: 'stage' },
      dir,
      pushEnv(dir, repo)
    )
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.outputs['job-ids'])).toEqual(['api.stage.smoke'])

    const tooShallow = clone(repo.origin, 1)
    const message = expectOneLineFailure(
      await runPlan({ changed: 'true', base: repo.first }, tooShallow, pushEnv(tooShallow, repo))
    )
    expect(message).toContain(`without the merge base of '${repo.first}' and 'HEAD'`)
    expect(message).toContain("'fetch-depth: 0'")
  })

  test("'from-ci' alone on a shallow clone warns (a binding may scope to changed components) and still compiles", async () => {
    const repo = repository()
    const dir = clone(repo.origin, 1)
    const result = await runPlan({ 'from-ci': 'github' }, dir, pushEnv(dir, repo))
    expect(result.exitCode).toBe(0)
    const warnings = result.stdout.split('\n').filter(line => line.startsWith('::warning::'))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain(`${dir} is a shallow git checkout`)
    expect(warnings[0]).toContain("'fetch-depth: 0'")
    expect(JSON.parse(result.outputs['job-ids'])).toEqual([
      'foundation.stage.smoke',
      'api.stage.smoke'
    ])
  })

  test('outside a git work tree the check stays quiet and orun decides', async () => {
    const result = await runPlan({ changed: 'true' }, workspace())
    expect(result.exitCode).toBe(0)
    expect(result.stdout).not.toMatch(/^::warning::/m)
  })
})
