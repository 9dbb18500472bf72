/**
 * Units behind the run action's call of orun: the capabilities probe and argv,
 * the child's environment, the secretRefs check, and the evidence that orun ran
 * the job (the process-level proof is in run-orun254.test.ts).
 */
import { afterAll, describe, expect, it } from '@jest/globals'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { probeRunCapabilities, runJobArgs } from '../src/orun/cli.js'
import { parsePlan } from '../src/plan/model.js'
import { childEnvironment, secretValuesOf } from '../src/run/child-env.js'
import { missingSecrets, missingSecretsMessage } from '../src/run/job-secrets.js'
import {
  explainNonRun,
  orunLines,
  ranToSuccess,
  readRunAccount,
  type RunAccount
} from '../src/run/run-evidence.js'
import { sharedPlanText } from '../testing/fixtures.js'
import { Scratch } from '../testing/scratch.js'

const scratch = new Scratch([])
afterAll(() => {
  scratch.cleanUp()
})
const tempDir = () => scratch.tempDir('run-child-')

describe('orun run capabilities and argv', () => {
  /** A fake orun whose `run --help` prints the given text and counts its calls. */
  function fakeOrun(help: string): { binary: string; calls: () => number } {
    const dir = tempDir()
    const binary = path.join(dir, 'orun')
    const count = path.join(dir, 'calls')
    writeFileSync(path.join(dir, 'help.txt'), help)
    writeFileSync(binary, `#!/bin/sh\necho x >> '${count}'\ncat '${path.join(dir, 'help.txt')}'\n`)
    chmodSync(binary, 0o755)
    return {
      binary,
      calls: () => readFileSync(count, 'utf8').split('\n').filter(Boolean).length
    }
  }

  it('reads --isolation and --local from one help probe per binary', async () => {
    const orun = fakeOrun(
      '      --isolation string   Per-job workspace isolation\n      --local   force local state\nGlobal Flags:\n      --all   do not scope\n'
    )
    const results = await Promise.all([
      probeRunCapabilities(orun.binary),
      probeRunCapabilities(orun.binary)
    ])
    expect(await probeRunCapabilities(orun.binary)).toEqual({ local: true, isolation: true })
    expect(results).toEqual([
      { local: true, isolation: true },
      { local: true, isolation: true }
    ])
    expect(orun.calls()).toBe(1)
  })

  it('an older orun: neither flag, and look-alikes (--local-only, --isolation-mode) do not count', async () => {
    const orun = fakeOrun(
      '      --local-only   x\n      --isolation-mode   y\n      --all-envs  z\n'
    )
    expect(await probeRunCapabilities(orun.binary)).toEqual({ local: false, isolation: false })
  })

  it('passes the job id as one --job=<id> argument, also when it starts with "-"', () => {
    const base = {
      planFile: '/tmp/p.json',
      jobId: '--dry-run.dev.x',
      execId: '-e1',
      cwd: '/tmp',
      env: {},
      extraArgs: ['--verbose'],
      onOutput: () => undefined
    }
    expect(runJobArgs({ ...base, capabilities: { local: true, isolation: true } })).toEqual([
      'run',
      '/tmp/p.json',
      '--job=--dry-run.dev.x',
      '--exec-id=-e1',
      '--all',
      '--isolation',
      'none',
      '--local',
      '--verbose'
    ])
    expect(runJobArgs({ ...base, capabilities: { local: false, isolation: false } })).toEqual([
      'run',
      '/tmp/p.json',
      '--job=--dry-run.dev.x',
      '--exec-id=-e1',
      '--all',
      '--verbose'
    ])
  })
})

describe('childEnvironment', () => {
  const parent = {
    PATH: '/usr/bin',
    GITHUB_TOKEN: 'ghs_user_passed_it',
    ACTIONS_ID_TOKEN_REQUEST_URL: 'https://oidc.example/x',
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'oidc-request-token',
    ACTIONS_RUNTIME_TOKEN: 'rt-token-1',
    ACTIONS_RUNTIME_URL: 'https://runtime.example/',
    ACTIONS_RESULTS_URL: 'https://results.example/',
    ACTIONS_CACHE_URL: 'https://cache.example/',
    ACTIONS_CACHE_SERVICE_V2: 'True',
    INPUT_TOKEN: 'backend-static-token',
    'INPUT_GITHUB-TOKEN': 'ghs_install_token',
    INPUT_JOB: 'api.dev.deploy',
    STATE_orun: '{"jobs":[]}',
    ORUN_SECRET_DATABASE_URL: 'postgres://secret'
  }

  it('keeps what a run: step has and removes what only JavaScript actions get', () => {
    const home = tempDir()
    const { env, removed } = childEnvironment(parent, home)
    expect(removed).toEqual([
      'ACTIONS_CACHE_SERVICE_V2',
      'ACTIONS_CACHE_URL',
      'ACTIONS_RESULTS_URL',
      'ACTIONS_RUNTIME_TOKEN',
      'ACTIONS_RUNTIME_URL',
      'INPUT_GITHUB-TOKEN',
      'INPUT_JOB',
      'INPUT_TOKEN',
      'STATE_orun'
    ])
    expect(env).toEqual({
      PATH: '/usr/bin',
      GITHUB_TOKEN: 'ghs_user_passed_it',
      ACTIONS_ID_TOKEN_REQUEST_URL: 'https://oidc.example/x',
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'oidc-request-token',
      ORUN_SECRET_DATABASE_URL: 'postgres://secret',
      ORUN_NO_AUTO_REFRESH: '1'
    })
  })

  it('sets DOCKER_CONFIG to ~/.docker when it exists and the user did not set it', () => {
    const home = tempDir()
    expect(childEnvironment({}, home).env.DOCKER_CONFIG).toBeUndefined()
    mkdirSync(path.join(home, '.docker'))
    expect(childEnvironment({}, home).env.DOCKER_CONFIG).toBe(path.join(home, '.docker'))
    expect(childEnvironment({ HOME: home }).env.DOCKER_CONFIG).toBe(path.join(home, '.docker'))
    expect(childEnvironment({ DOCKER_CONFIG: '/mine' }, home).env.DOCKER_CONFIG).toBe('/mine')
    expect(childEnvironment({ ORUN_NO_AUTO_REFRESH: '0' }, home).env.ORUN_NO_AUTO_REFRESH).toBe('0')
  })

  it('redacts removed credentials and ORUN_SECRET_* values, not plain settings', () => {
    expect(secretValuesOf(parent).sort()).toEqual(
      [
        'rt-token-1',
        'https://runtime.example/',
        'https://results.example/',
        'https://cache.example/',
        'backend-static-token',
        'ghs_install_token',
        '{"jobs":[]}',
        'postgres://secret'
      ].sort()
    )
  })
})

describe('secretRefs', () => {
  it('names every required missing ORUN_SECRET_<KEY>, not optional ones, in one message', () => {
    const plan = parsePlan(sharedPlanText('orun254-secret-refs'), 'p.json')
    const job = plan.byId.get('db.stage.migrate')!
    expect(missingSecrets(job, { ORUN_SECRET_SENTRY_DSN: 'x' })).toEqual([
      {
        variable: 'ORUN_SECRET_DATABASE_URL',
        ref: 'secret://stage/db/DATABASE_URL',
        asEnv: 'DATABASE_URL',
        empty: false
      }
    ])
    expect(missingSecrets(job, { ORUN_SECRET_DATABASE_URL: 'v' })).toEqual([])
    const two = {
      ...job,
      secretRefs: [
        { asEnv: 'B', ref: 'secret://env:dev/b-key' },
        { asEnv: 'A', ref: 'secret://A_KEY' }
      ]
    }
    const missing = missingSecrets(two, { ORUN_SECRET_A_KEY: '' })
    expect(missingSecretsMessage('x.dev.y', missing)).toBe(
      'x.dev.y needs secrets that are not set: ORUN_SECRET_A_KEY (set but empty) for A, ORUN_SECRET_b-key for B. ' +
        'orun resolves secretRefs only from ORUN_SECRET_<KEY> variables when it runs with local state, ' +
        'so the job was not started and is reported failed. Add to the run step (with the GitHub secrets that hold the values):\n' +
        '  env:\n' +
        '    ORUN_SECRET_A_KEY: ${{ secrets.A_KEY }}\n' +
        '    ORUN_SECRET_b-key: ${{ secrets.b_key }}'
    )
  })
})

describe('run evidence', () => {
  const ghaSuccess = [
    '',
    '▶ Deploy',
    '  component   api-edge',
    '  job-id      api-edge.dev.deploy',
    '',
    'steps',
    '::group::✓  01 main  0.4s',
    '::stop-commands::orun-stop-api-edge.dev.deploy',
    'api-edge dev done',
    '::orun-stop-api-edge.dev.deploy::',
    '::endgroup::',
    '',
    '────',
    '✓ Deploy completed · 0.5s',
    '  steps       1 passed, 0 failed, 0 skipped',
    '',
    '\x1b[1m\x1b[32m✓ Done in 0.5s\x1b[0m\x1b[0m',
    '  \x1b[2m1 succeeded\x1b[0m',
    '',
    '  status  orun status --exec-id e1'
  ].join('\n')

  it('orun 2.54 GitHub Actions output of a job that ran: success (colours stripped)', () => {
    const account = readRunAccount(ghaSuccess, 'api-edge.dev.deploy')
    expect(account).toMatchObject({ summary: true, succeeded: 1, started: true, failed: 0 })
    expect(ranToSuccess(account)).toBe(true)
    expect(
      explainNonRun(account, { jobId: 'api-edge.dev.deploy', cwd: '/', extraArgs: [] })
    ).toBeUndefined()
  })

  it('step output that imitates orun (a nested orun) does not count', () => {
    const nested = [
      '::group::✓  01 main  0.4s',
      '::stop-commands::orun-stop-x',
      '✓ Done in 0.1s',
      '  1 succeeded',
      '::orun-stop-x::',
      '::endgroup::'
    ].join('\n')
    expect(orunLines(nested)).toEqual(['::group::✓  01 main  0.4s', '::endgroup::'])
    expect(ranToSuccess(readRunAccount(nested, 'x'))).toBe(false)
  })

  const context = { jobId: 'j.dev.x', cwd: '/nonexistent/dir', extraArgs: [] as string[] }
  const explain = (output: string, extraArgs: string[] = []) =>
    explainNonRun(readRunAccount(output, 'j.dev.x'), { ...context, extraArgs })

  it.each<[string, string, RegExp]>([
    [
      'concurrent path, dependencies unmet',
      '\n✓ Done in 0.0s\n  1 waiting\n',
      /orun left it waiting because its dependencies are not completed in orun's own state/
    ],
    [
      'failFast off, a step failed',
      '::error::j › main: exit status 3\n\n✗ Failed in 0.2s\n  1 failed\n',
      /orun reports the job failed, yet exited 0 \(the plan's execution.failFast is off\)/
    ],
    ['cached', '\n✓ Done in 0.0s\n  1 cached\n', /already completed in its own local state/],
    [
      'dry run',
      '\n◌ Preview ready in 0.0s\n  1 selected\n',
      /only previewed the job \(a dry run\)/
    ],
    ['no jobs', '✓ no jobs to run\n', /orun found no jobs to run/],
    [
      'started, no summary',
      '  job-id      j.dev.x\n',
      /orun started the job but printed no result for it/
    ],
    ['silence', '', /orun printed no account of the job at all, so it was filtered out or skipped/]
  ])('%s: reported with why', (_case, output, why) => {
    const message = explain(output)!
    expect(message.startsWith('orun exited 0 but did not run j.dev.x to success: ')).toBe(true)
    expect(message).toMatch(why)
  })

  it("names filtering 'args' and a component.yaml above the working directory", () => {
    const root = tempDir()
    const sub = path.join(root, 'apps', 'api')
    mkdirSync(sub, { recursive: true })
    writeFileSync(path.join(root, 'component.yaml'), 'name: api\n')
    const message = explainNonRun(readRunAccount('', 'j.dev.x') as RunAccount, {
      jobId: 'j.dev.x',
      cwd: sub,
      extraArgs: ['--component', 'web', '--verbose']
    })!
    expect(message).toContain("The 'args' input passes --component, which can filter")
    expect(message).toContain(
      `A component.yaml at ${path.join(root, 'component.yaml')} can scope orun`
    )
  })
})
