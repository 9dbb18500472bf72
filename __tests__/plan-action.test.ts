import { afterAll, describe, expect, test } from '@jest/globals'
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
}

/** Plan jobs from a plan file, generated: `count` independent jobs over two environments. */
function generatedPlan(count: number): PlanFile {
  const jobs: PlanJob[] = Array.from({ length: count }, (_, k) => ({
    id: `svc${k}@${k % 2 ? 'prod' : 'dev'}.smoke`,
    component: `svc${k}`,
    environment: k % 2 ? 'prod' : 'dev',
    dependsOn: k >= 2 ? [`svc${k - 2}@${k % 2 ? 'prod' : 'dev'}.smoke`] : [],
    steps: [{ id: 'smoke', run: 'true' }]
  }))
  return { metadata: { name: 'big', checksum: `sha256-${'7'.repeat(64)}` }, jobs }
}

describe('plan action compiling intent.yaml with orun', () => {
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

    const jobs = JSON.parse(outputs.jobs) as MatrixEntry[]
    expect(jobs).toEqual([
      { job: 'foundation@dev.smoke', env: 'dev', component: 'foundation' },
      { job: 'api@dev.smoke', env: 'dev', component: 'api' },
      { job: 'web@dev.smoke', env: 'dev', component: 'web' },
      { job: 'foundation@stage.smoke', env: 'stage', component: 'foundation' },
      { job: 'api@stage.smoke', env: 'stage', component: 'api' },
      { job: 'web@stage.smoke', env: 'stage', component: 'web' }
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
    expect(summary).toContain('| `api@stage.smoke` | stage | api | `foundation@stage.smoke` |')
  })

  test("'environments: dev' compiles only the dev jobs", async () => {
    const result = await runPlan({ environments: 'dev' }, workspace())
    expect(result.exitCode).toBe(0)
    expect(result.outputs['job-count']).toBe('3')
    expect(JSON.parse(result.outputs['job-ids'])).toEqual([
      'foundation@dev.smoke',
      'api@dev.smoke',
      'web@dev.smoke'
    ])
    expect(result.stdout).toContain('--all --env dev')
  })

  test("'components' and 'environments' narrow the plan together", async () => {
    const result = await runPlan({ components: 'api\nweb', environments: 'stage' }, workspace())
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.outputs.jobs)).toEqual([
      { job: 'api@stage.smoke', env: 'stage', component: 'api' },
      { job: 'web@stage.smoke', env: 'stage', component: 'web' }
    ])
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
    expect(JSON.parse(result.outputs['job-ids'])).toEqual(['api@dev.smoke', 'api@stage.smoke'])
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
    ['failing-upstream', 3, '1ee28a631e0d']
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
      expect(jobs[position.get(job.id)!]).toEqual({
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

  test('more jobs than a matrix holds fails naming the limit and the way out', async () => {
    const dir = workspace(null)
    writeFileSync(path.join(dir, 'max.json'), JSON.stringify(generatedPlan(256)))
    writeFileSync(path.join(dir, 'over.json'), JSON.stringify(generatedPlan(257)))

    const atLimit = await runWithPlanFile('max.json', {}, dir)
    expect(atLimit.exitCode).toBe(0)
    expect(atLimit.outputs['job-count']).toBe('256')

    const message = expectOneLineFailure(await runWithPlanFile('over.json', {}, dir))
    expect(message).toContain('The plan has 257 jobs')
    expect(message).toContain('at most 256 jobs in one matrix')
    expect(message).toMatch(/'environments' or 'components'/)
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
