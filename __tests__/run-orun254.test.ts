/**
 * The bundled run action (dist/run/index.js) against the stand-in orun as it behaves
 * in orun 2.54, with old-shape (sourceplane.io/v1, comp@env.job) and new-shape
 * (orun.io/v1, comp.env.job) plans: how orun is called (--job=<id>, --all,
 * --isolation none, --local only when listed), that a job orun did not run is never
 * a success, the child's environment (no INPUT_* or runtime tokens, DOCKER_CONFIG,
 * ORUN_NO_AUTO_REFRESH), what reaches the stored log, secretRefs, and no outer group.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  STANDIN_DIR,
  cleanupActionProcesses,
  runActionProcess,
  type ActionProcessResult,
  localRunInputs
} from '../testing/action-process.js'
import { errorLines } from '../testing/expect-failure.js'
import { startCoordinationServer, type CoordinationServer } from '../testing/coordination-server.js'
import { sharedPlanText, writePlanCheckout } from '../testing/fixtures.js'
import { Scratch } from '../testing/scratch.js'

const RUN_BUNDLE = 'dist/run/index.js'
// Process-level runs on a busy 2-core machine: generous.
const TIMEOUT = 120_000

let server: CoordinationServer
const scratch = new Scratch([])

beforeAll(async () => {
  server = await startCoordinationServer({ rateLimit: false })
})

afterAll(async () => {
  await server.close()
  cleanupActionProcesses()
  scratch.cleanUp()
})

const tempDir = (prefix: string) => scratch.tempDir(prefix)

const freshRunId = () => `gha-7000000001-1-${randomBytes(4).toString('hex')}`

interface Execution {
  job: string
  argv: string[]
  exitCode: number
  cwd: string
  outcome: string | null
}

interface Runner {
  cwd: string
  executions(): Execution[]
  recordFile: string
}

function runnerWith(planText: string): Runner {
  const cwd = tempDir('orun254-ws-')
  writePlanCheckout(cwd, planText)
  const recordFile = path.join(tempDir('orun254-record-'), 'record.jsonl')
  writeFileSync(recordFile, '')
  return {
    cwd,
    recordFile,
    executions: () =>
      readFileSync(recordFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(line => JSON.parse(line) as Execution)
  }
}

function runMain(
  runner: Runner,
  inputs: Record<string, string>,
  env: Record<string, string> = {}
): Promise<ActionProcessResult> {
  return runActionProcess(RUN_BUNDLE, {
    inputs: {
      ...localRunInputs(server.url),
      ...inputs
    },
    env: {
      ...server.tokenEnv(),
      ORUN_STANDIN_RECORD: runner.recordFile,
      // The runner's HOME has no ~/.docker unless a test makes one.
      HOME: tempDir('orun254-home-'),
      ...env
    },
    cwd: runner.cwd,
    timeoutMs: TIMEOUT
  })
}

/** The job's log as the server stored it (reads through the API may lag the upload). */
const storedLog = (runId: string, jobId: string): string => server.storedLog(runId, jobId) ?? ''

/** A plan's JSON with every step's `run` replaced. */
function withSteps(planText: string, run: string, patch: Record<string, unknown> = {}): string {
  const plan = JSON.parse(planText)
  for (const job of plan.jobs) job.steps = job.steps.map((s: object) => ({ ...s, run }))
  return JSON.stringify({ ...plan, ...patch })
}

/** The `::group::` lines of the action's own output (what the GitHub log renders). */
const groupLines = (stdout: string) => stdout.split('\n').filter(l => l.startsWith('::group::'))

describe('run action with orun 2.54: how orun is called', () => {
  it(
    'runs a new-shape job in the checked-out tree with --job=<id> --all --isolation none --local, no outer group',
    async () => {
      const plan = withSteps(sharedPlanText('orun254-matrix'), 'echo "job $ORUN_JOB_ID in $(pwd)"')
      const runner = runnerWith(plan)
      const runId = freshRunId()
      // The dependency ran elsewhere: the backend's claim proves it, orun's own state does not.
      const first = await runMain(runner, { 'run-id': runId, job: 'foundation.dev.plan-apply' })
      expect(first.exitCode).toBe(0)
      const result = await runMain(runner, { 'run-id': runId, job: 'api-edge.dev.deploy' })

      expect(result.exitCode).toBe(0)
      expect(result.outputs.status).toBe('success')
      const [, second] = runner.executions()
      expect(second.argv).toEqual([
        'run',
        expect.stringMatching(/job-ba97a4ad4356-\d+\.json$/),
        '--job=api-edge.dev.deploy',
        `--exec-id=${runId}`,
        '--all',
        '--isolation',
        'none',
        '--local'
      ])
      expect(second).toMatchObject({ exitCode: 0, outcome: 'succeeded' })
      const log = storedLog(runId, 'api-edge.dev.deploy')
      // In the checked-out tree, in the job's path (apps/api-edge), not a copy under .orun/runs/.
      expect(log).toContain(
        `job api-edge.dev.deploy in ${path.join(runner.cwd, 'apps', 'api-edge')}\n`
      )
      expect(log).toContain('✓ Deploy completed')
      expect(server.jobsOf(runId).find(j => j.jobId === 'api-edge.dev.deploy')!.status).toBe(
        'success'
      )
      // orun's per-step groups only: the action prints a plain header line.
      expect(groupLines(result.stdout)).toEqual([expect.stringMatching(/^::group::✓ {2}01 main /)])
      expect(result.stdout).toContain('── orun run api-edge.dev.deploy ──\n')
      expect(existsSync(path.join(runner.cwd, '.orun', 'runs'))).toBe(false)
    },
    TIMEOUT
  )

  it.each([
    ['old-shape plan (sourceplane.io/v1)', 'remote-state-matrix', 'foundation@stage.smoke'],
    ['new-shape plan (orun.io/v1)', 'orun254-matrix', 'foundation.stage.plan-apply']
  ])(
    'with an orun whose run --help lists neither --isolation nor --local: %s still runs in the tree',
    async (_shape, fixture, jobId) => {
      const plan = withSteps(sharedPlanText(fixture), 'echo "ran in $(pwd)"')
      const runner = runnerWith(plan)
      const runId = freshRunId()
      const result = await runMain(
        runner,
        { 'run-id': runId, job: jobId },
        { ORUN_STANDIN_RUN_WITHOUT: 'isolation,local' }
      )

      expect(result.exitCode).toBe(0)
      const [execution] = runner.executions()
      expect(execution.argv.slice(2)).toEqual([`--job=${jobId}`, `--exec-id=${runId}`, '--all'])
      expect(execution.outcome).toBe('succeeded')
      // concurrency 1 in the derived plan: no per-job copy under .orun/runs/, though
      // the orun254 plan says concurrency 4 and this orun cannot be told --isolation none.
      expect(storedLog(runId, jobId)).toContain(
        `ran in ${path.join(runner.cwd, 'apps', 'foundation')}\n`
      )
      expect(server.jobsOf(runId).find(j => j.jobId === jobId)!.status).toBe('success')
    },
    TIMEOUT
  )

  it(
    'runs a slice of the new-shape plan on one runner in dependency order',
    async () => {
      const runner = runnerWith(sharedPlanText('orun254-matrix'))
      const runId = freshRunId()
      const result = await runMain(runner, { 'run-id': runId, environments: 'stage' })
      expect(result.exitCode).toBe(0)
      expect(runner.executions().map(e => [e.job, e.outcome])).toEqual([
        ['foundation.stage.plan-apply', 'succeeded'],
        ['api-edge.stage.deploy', 'succeeded'],
        ['web-console.stage.deploy', 'succeeded']
      ])
      expect(storedLog(runId, 'web-console.stage.deploy')).toContain('web-console stage done')
    },
    TIMEOUT
  )
})

describe('run action: a job orun did not run is never a success', () => {
  it(
    'an orun that still scopes by component.yaml exits 0 silently: reported failed, naming the file',
    async () => {
      // An orun that drops --all (as if it ignored it), run below a component.yaml of
      // another component: it filters the job out and exits 0 without a word.
      const wrapperDir = tempDir('orun254-wrapper-')
      const wrapper = path.join(wrapperDir, 'orun')
      writeFileSync(
        wrapper,
        '#!/bin/sh\n' +
          'for arg do shift; [ "$arg" = --all ] && continue; set -- "$@" "$arg"; done\n' +
          `exec "${path.join(STANDIN_DIR, 'orun')}" "$@"\n`
      )
      chmodSync(wrapper, 0o755)
      const runner = runnerWith(sharedPlanText('orun254-matrix'))
      writeFileSync(path.join(runner.cwd, 'component.yaml'), 'name: web-console\n')
      const runId = freshRunId()
      const result = await runMain(runner, {
        'run-id': runId,
        job: 'foundation.dev.plan-apply',
        'orun-path': wrapperDir
      })

      expect(result.exitCode).toBe(1)
      expect(result.outputs.status).toBe('failed')
      expect(runner.executions()).toEqual([
        expect.objectContaining({ exitCode: 0, outcome: 'filtered' })
      ])
      const record = server.jobsOf(runId).find(j => j.jobId === 'foundation.dev.plan-apply')!
      expect(record.status).toBe('failed')
      expect(record.lastError).toContain(
        'orun exited 0 but did not run foundation.dev.plan-apply to success: orun printed no account of the job at all'
      )
      expect(record.lastError).toContain(
        `A component.yaml at ${path.join(runner.cwd, 'component.yaml')} can scope orun`
      )
      expect(errorLines(result).at(-1)).toMatch(
        /foundation\.dev\.plan-apply: failed: orun exited 0 but did not run/
      )
      expect(storedLog(runId, 'foundation.dev.plan-apply')).toContain(
        '[orun action] orun exited 0 but did not run foundation.dev.plan-apply'
      )
    },
    TIMEOUT
  )

  it(
    'a failed step in a plan without failFast (orun exits 0): reported failed',
    async () => {
      const plan = withSteps(sharedPlanText('single'), 'echo "about to fail"; exit 4', {
        execution: { concurrency: 1, failFast: false }
      })
      const runner = runnerWith(plan)
      const runId = freshRunId()
      const result = await runMain(runner, { 'run-id': runId, job: 'solo@dev.smoke' })

      expect(result.exitCode).toBe(1)
      expect(runner.executions()).toEqual([
        expect.objectContaining({ exitCode: 0, outcome: 'failed' })
      ])
      const record = server.jobsOf(runId)[0]
      expect(record.status).toBe('failed')
      expect(record.lastError).toContain(
        "orun exited 0 but did not run solo@dev.smoke to success: orun reports the job failed, yet exited 0 (the plan's execution.failFast is off)"
      )
      expect(record.lastError).toContain('about to fail')
    },
    TIMEOUT
  )
})

describe("run action: the child's environment is a run: step's", () => {
  it(
    'no INPUT_*, STATE_* or runtime token reaches orun or a step, nor the stored log; the OIDC request vars do',
    async () => {
      const token = await server.mintToken()
      const planted: Record<string, string> = {
        ACTIONS_RUNTIME_TOKEN: 'planted-runtime-token-5c1f',
        ACTIONS_RUNTIME_URL: 'https://pipelines.example.test/planted-runtime-url-77a0/',
        ACTIONS_RESULTS_URL: 'https://results.example.test/planted-results-url-19bd/',
        ACTIONS_CACHE_URL: 'https://cache.example.test/planted-cache-url-a3e2/',
        'INPUT_GITHUB-TOKEN': 'ghs_plantedGithubToken0d9e',
        'INPUT_EXTRA-SECRET': 'planted-unknown-input-4b7c',
        STATE_planted: 'planted-state-value-e81a'
      }
      // A tool in the job that prints them anyway reads them from this file.
      const secretsFile = path.join(tempDir('orun254-planted-'), 'values.txt')
      writeFileSync(secretsFile, [...Object.values(planted), token].join('\n') + '\n')
      const plan = withSteps(
        sharedPlanText('orun254-secret-refs'),
        `env | sort; echo "printing: $(cat '${secretsFile}' | tr '\\n' ' ')"; exit 5`
      )
      const runner = runnerWith(plan)
      const dump = path.join(tempDir('orun254-dump-'), 'env.json')
      const runId = freshRunId()
      const result = await runMain(
        runner,
        {
          'run-id': runId,
          job: 'db.stage.migrate',
          token,
          'github-token': planted['INPUT_GITHUB-TOKEN']
        },
        {
          ...planted,
          ORUN_STANDIN_DUMP_ENV: dump,
          ORUN_SECRET_DATABASE_URL: 'postgres://planted-db-secret-6f2d'
        }
      )

      expect(result.exitCode).toBe(1)
      const childEnv = JSON.parse(readFileSync(dump, 'utf8')) as Record<string, string>
      for (const name of Object.keys(childEnv)) {
        expect(name).not.toMatch(/^(INPUT_|STATE_)/)
      }
      for (const name of [
        'ACTIONS_RUNTIME_TOKEN',
        'ACTIONS_RUNTIME_URL',
        'ACTIONS_RESULTS_URL',
        'ACTIONS_CACHE_URL'
      ]) {
        expect(childEnv).not.toHaveProperty(name)
      }
      const childValues = Object.values(childEnv).join('\n')
      for (const value of [...Object.values(planted), token]) {
        expect(childValues).not.toContain(value)
      }
      // What a run: step has stays: the OIDC request vars, GitHub's own, the job's secrets.
      expect(childEnv.ACTIONS_ID_TOKEN_REQUEST_URL).toBe(
        server.tokenEnv().ACTIONS_ID_TOKEN_REQUEST_URL
      )
      expect(childEnv.ACTIONS_ID_TOKEN_REQUEST_TOKEN).toBeTruthy()
      expect(childEnv.GITHUB_WORKSPACE).toBe(runner.cwd)
      expect(childEnv.ORUN_NO_AUTO_REFRESH).toBe('1')
      expect(childEnv.ORUN_REMOTE_STATE).toBe('false')

      const log = storedLog(runId, 'db.stage.migrate')
      const record = server.jobsOf(runId)[0]
      expect(record.status).toBe('failed')
      expect(log).toContain('printing: ***')
      // The step's own `env` listing: orun's step environment has none of the names either.
      expect(log).toMatch(/^ORUN_JOB_ID=db\.stage\.migrate$/m)
      expect(log).toMatch(/^ACTIONS_ID_TOKEN_REQUEST_URL=/m)
      expect(log).not.toMatch(
        /^(INPUT_|STATE_|ACTIONS_RUNTIME_|ACTIONS_RESULTS_URL|ACTIONS_CACHE_URL)/m
      )
      for (const value of [...Object.values(planted), token, 'postgres://planted-db-secret-6f2d']) {
        expect(log).not.toContain(value)
        expect(record.lastError).not.toContain(value)
      }
    },
    TIMEOUT
  )

  it(
    "DOCKER_CONFIG points at the runner's ~/.docker while orun moves HOME; a user's value and ORUN_NO_AUTO_REFRESH are kept",
    async () => {
      const home = tempDir('orun254-home-docker-')
      mkdirSync(path.join(home, '.docker'))
      writeFileSync(path.join(home, '.docker', 'config.json'), '{"auths":{}}\n')
      const plan = withSteps(
        sharedPlanText('single'),
        'echo "docker=[$DOCKER_CONFIG] home=[$HOME] refresh=[$ORUN_NO_AUTO_REFRESH]"'
      )
      const runAndLog = async (env: Record<string, string>): Promise<string> => {
        const runner = runnerWith(plan)
        const runId = freshRunId()
        const result = await runMain(runner, { 'run-id': runId, job: 'solo@dev.smoke' }, env)
        expect(result.exitCode).toBe(0)
        return storedLog(runId, 'solo@dev.smoke')
      }

      const found = await runAndLog({ HOME: home })
      const line = /docker=\[(.*)\] home=\[(.*)\] refresh=\[(.*)\]/.exec(found)!
      expect(line[1]).toBe(path.join(home, '.docker'))
      expect(line[2]).not.toBe(home) // orun's per-job HOME
      expect(line[2]).not.toBe('')
      expect(line[3]).toBe('1')

      const own = await runAndLog({
        HOME: home,
        DOCKER_CONFIG: '/opt/docker-config',
        ORUN_NO_AUTO_REFRESH: '0'
      })
      expect(own).toMatch(/docker=\[\/opt\/docker-config\] home=\[.+\] refresh=\[0\]/)

      const none = await runAndLog({})
      expect(none).toMatch(/docker=\[\] home=\[.+\] refresh=\[1\]/)
    },
    TIMEOUT
  )
})

describe('run action: secretRefs', () => {
  it(
    'a required ORUN_SECRET_<KEY> that is not set fails the job before orun starts, naming the env: line',
    async () => {
      const runner = runnerWith(sharedPlanText('orun254-secret-refs'))
      const runId = freshRunId()
      const result = await runMain(runner, { 'run-id': runId, job: 'db.stage.migrate' })

      expect(result.exitCode).toBe(1)
      expect(runner.executions()).toEqual([])
      const record = server.jobsOf(runId)[0]
      expect(record.status).toBe('failed')
      expect(record.lastError).toContain(
        'db.stage.migrate needs secrets that are not set: ORUN_SECRET_DATABASE_URL for DATABASE_URL.'
      )
      expect(record.lastError).toContain(
        '  env:\n    ORUN_SECRET_DATABASE_URL: ${{ secrets.DATABASE_URL }}'
      )
      // SENTRY_DSN is optional: not required.
      expect(record.lastError).not.toContain('SENTRY')
      expect(result.stdout).toContain('    ORUN_SECRET_DATABASE_URL: ${{ secrets.DATABASE_URL }}\n')
      expect(storedLog(runId, 'db.stage.migrate')).toContain(
        '[orun action] db.stage.migrate needs secrets that are not set'
      )
    },
    TIMEOUT
  )

  it(
    'an empty ORUN_SECRET_<KEY> counts as missing; a set one runs the job with the secret',
    async () => {
      const plan = withSteps(
        sharedPlanText('orun254-secret-refs'),
        'echo "url=$DATABASE_URL sentry=[$SENTRY_DSN]"'
      )
      const empty = runnerWith(plan)
      const emptyRun = freshRunId()
      const refused = await runMain(
        empty,
        { 'run-id': emptyRun, job: 'db.stage.migrate' },
        { ORUN_SECRET_DATABASE_URL: '' }
      )
      expect(refused.exitCode).toBe(1)
      expect(empty.executions()).toEqual([])
      expect(server.jobsOf(emptyRun)[0].lastError).toContain(
        'ORUN_SECRET_DATABASE_URL (set but empty) for DATABASE_URL'
      )

      const runner = runnerWith(plan)
      const runId = freshRunId()
      const result = await runMain(
        runner,
        { 'run-id': runId, job: 'db.stage.migrate' },
        { ORUN_SECRET_DATABASE_URL: 'postgres://db-secret-value-93ab' }
      )
      expect(result.exitCode).toBe(0)
      expect(server.jobsOf(runId)[0].status).toBe('success')
      // orun masks the resolved value; the action redacts ORUN_SECRET_* values too.
      const log = storedLog(runId, 'db.stage.migrate')
      expect(log).toContain('url=*** sentry=[]')
      expect(log).not.toContain('db-secret-value-93ab')
    },
    TIMEOUT
  )
})
