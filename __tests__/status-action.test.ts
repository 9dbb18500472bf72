/**
 * The bundled status action (dist/status/index.js) as a process, against the
 * in-process coordination server and the local stand-in of GitHub's REST API
 * (no network): runs are driven to the wanted state through the backend
 * client, as the run action's runners would leave them, then the status step
 * reads them back and reports.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { createTokenSource } from '../src/backend/auth.js'
import { BackendClient } from '../src/backend/client.js'
import { toBackendPlan } from '../src/backend/plan.js'
import { parsePlan, type Plan, type PlanFile } from '../src/plan/model.js'
import {
  DEFAULT_RUN_ID,
  cleanupActionProcesses,
  runActionProcess,
  type ActionProcessResult
} from '../testing/action-process.js'
import { expectCleanFailure } from '../testing/expect-failure.js'
import {
  BACKEND_BUILDS,
  DEFAULT_BACKEND_BUILD,
  HEARTBEAT_TIMEOUT_ERROR,
  startCoordinationServer,
  type BackendBuild,
  type CoordinationServer
} from '../testing/coordination-server.js'
import { sharedPlanText } from '../testing/fixtures.js'
import { silenceWorkflowCommands } from '../testing/quiet.js'
import {
  DEFAULT_GITHUB_TOKEN,
  startGitHubApiServer,
  type GitHubApiServer,
  type StandinJob
} from '../testing/github-api-server.js'
import { Scratch } from '../testing/scratch.js'

const BUNDLE = 'dist/status/index.js'
const REPOSITORY = 'octo-org/octo-repo'
const READ_ONLY_TOKEN = 'ghs_standin_token_without_actions_read'

let server: CoordinationServer
let api: GitHubApiServer
const scratch = new Scratch([])

beforeAll(async () => {
  // The test's own backend client mints tokens through @actions/core, which prints ::add-mask::.
  silenceWorkflowCommands()
  // The status step runs after the whole matrix has finished, long after the last log upload:
  // the service's read-after-write lag on logs (about 1 s) is over by then.
  server = await startCoordinationServer({ rateLimit: false, logVisibilityMs: 0 })
  api = await startGitHubApiServer({
    tokens: { [DEFAULT_GITHUB_TOKEN]: true, [READ_ONLY_TOKEN]: false }
  })
})

afterAll(async () => {
  await server.close()
  await api.close()
  cleanupActionProcesses()
  scratch.cleanUp()
})

const planRunId = (plan: Plan, attempt = 1) => `gha-${DEFAULT_RUN_ID}-${attempt}-${plan.id}`

/** A plan with a fresh plan id (the run ids made from it are then fresh too). */
function freshPlan(text: string): Plan {
  const file = JSON.parse(text) as PlanFile
  file.metadata.checksum = `sha256-${randomBytes(32).toString('hex')}`
  return parsePlan(JSON.stringify(file), 'plan.json')
}

function directClient(): BackendClient {
  Object.assign(process.env, server.tokenEnv())
  return new BackendClient({ baseUrl: server.url, tokens: createTokenSource({ log: () => {} }) })
}

type Drive = 'success' | 'failed' | 'running' | { carriedFrom: number }

/**
 * Creates the run and leaves each listed job as a runner would: claimed by
 * "GitHub Actions <n>", its log uploaded, its result reported. Unlisted jobs stay pending.
 */
async function driveRun(
  plan: Plan,
  runId: string,
  jobs: Record<string, Drive>,
  logOf: (jobId: string) => string = jobId => `${jobId} start\n${jobId} done\n`
): Promise<Map<string, string>> {
  const client = directClient()
  await client.createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
  await server.whenVisible(runId)
  const runners = new Map<string, string>()
  let runnerNumber = 0
  for (const job of plan.order) {
    const drive = jobs[job.id]
    if (!drive) continue
    const runnerName = `GitHub Actions ${++runnerNumber}`
    const runnerId = `${runnerName}-1-4242-${randomBytes(3).toString('hex')}`
    runners.set(job.id, runnerName)
    expect((await client.claim(runId, job.id, runnerId)).claimed).toBe(true)
    if (drive === 'running') continue
    await client.uploadLog(runId, job.id, logOf(job.id))
    if (typeof drive === 'object') {
      const note = `carried over from attempt ${drive.carriedFrom} (runner GitHub Actions 9-1-1-aa)`
      await client.update(runId, job.id, runnerId, 'success', note)
    } else if (drive === 'failed') {
      await client.update(
        runId,
        job.id,
        runnerId,
        'failed',
        `orun exited with code 3\n${job.id} broke`
      )
    } else {
      await client.update(runId, job.id, runnerId, 'success')
    }
  }
  return runners
}

/** GitHub jobs of this attempt named `run <job id>`, each on the runner that ran it. */
function githubJobsFor(runners: Map<string, string>, attempt = 1, filler = 0): void {
  const now = Date.now()
  const jobs: StandinJob[] = [
    { name: 'plan', runnerName: 'GitHub Actions 0' },
    ...[...runners].map(([jobId, runnerName]) => ({
      name: `run ${jobId}`,
      runnerName,
      startedAt: new Date(now - 60_000).toISOString(),
      completedAt: new Date(now + 60_000).toISOString()
    })),
    ...Array.from({ length: filler }, (_, i) => ({ name: `lint ${i}`, runnerName: `other ${i}` }))
  ]
  api.setJobs(REPOSITORY, DEFAULT_RUN_ID, attempt, jobs)
}

function runStatus(
  plan: Plan | string,
  inputs: Record<string, string>,
  env: Record<string, string> = {}
): Promise<ActionProcessResult> {
  const cwd = scratch.tempDir('orun-status-ws-')
  writeFileSync(
    path.join(cwd, 'plan.json'),
    typeof plan === 'string' ? plan : JSON.stringify(plan.file)
  )
  return runActionProcess(BUNDLE, {
    inputs: {
      'backend-url': server.url,
      'plan-file': 'plan.json',
      'github-token': DEFAULT_GITHUB_TOKEN,
      ...inputs
    },
    env: {
      ...server.tokenEnv(),
      GITHUB_API_URL: api.url,
      GITHUB_REPOSITORY: REPOSITORY,
      ...env
    },
    cwd,
    timeoutMs: 90_000
  })
}

const annotations = (result: ActionProcessResult) =>
  result.stdout.split('\n').filter(line => line.startsWith('::error'))
const backendRoutesSince = (before: number) =>
  server.requests
    .slice(before)
    .filter(r => r.route !== 'token' && r.route !== 'jwks')
    .map(r => r.route)

/** The describe's tests run against a server of this build (the default one is the suite's). */
function useBuild(build: BackendBuild): void {
  let suiteServer: CoordinationServer | undefined
  beforeAll(async () => {
    if (build === DEFAULT_BACKEND_BUILD) return
    suiteServer = server
    server = await startCoordinationServer({ build, rateLimit: false, logVisibilityMs: 0 })
  })
  afterAll(async () => {
    if (!suiteServer) return
    await server.close()
    server = suiteServer
  })
}

// The main scenarios on each build of orun-backend (a deployment does not say which it runs).
describe.each(BACKEND_BUILDS)('backend build %s', (build: BackendBuild) => {
  useBuild(build)

  describe('status action: a run that succeeded', () => {
    it('reports success with the DAG, timeline and a table linking every job to its GitHub log', async () => {
      const plan = freshPlan(sharedPlanText('remote-state-matrix'))
      const runId = planRunId(plan)
      const runners = await driveRun(
        plan,
        runId,
        Object.fromEntries(plan.order.map(j => [j.id, 'success']))
      )
      // 150 other jobs in the workflow run: the lookup has to follow GitHub's pages (100 a page).
      githubJobsFor(runners, 1, 150)
      const apiBefore = api.requests.length
      const before = server.requests.length

      const result = await runStatus(plan, { 'run-id': runId, 'plan-id': plan.id })

      expect(result.exitCode).toBe(0)
      expect(annotations(result)).toEqual([])
      expect(result.outputs.status).toBe('success')
      expect(JSON.parse(result.outputs.counts)).toEqual({
        failed: 0,
        blocked: 0,
        'not-run': 0,
        running: 0,
        carried: 0,
        success: 6,
        skipped: 0
      })
      expect(result.outputs['failed-jobs']).toBe('[]')
      expect(result.outputs['blocked-jobs']).toBe('[]')
      expect(result.outputs['not-run-jobs']).toBe('[]')
      const summary = result.summary
      expect(summary.startsWith('## ✅ orun run succeeded')).toBe(true)
      expect(summary.match(/:::success$/gm)).toHaveLength(6)
      expect(summary).toContain('```mermaid\ngantt')
      expect(summary).toMatch(
        /Critical path \([\d.]+s\): foundation@stage\.smoke → api@stage\.smoke → web@stage\.smoke/
      )
      const rows = summary.split('\n').filter(line => /^\| \w+@(dev|stage)\.smoke \|/.test(line))
      expect(rows).toHaveLength(6)
      for (const row of rows) {
        expect(row).toMatch(
          /\| ✓ succeeded \| [\d.]+s \| [\d.]+s \| GitHub Actions \d-1-4242-[0-9a-f]{6} \| 1 \| \[log\]\(https:\/\/github\.com\/octo-org\/octo-repo\/actions\/runs\/7000000001\/job\/\d+\) \|$/
        )
      }
      // Two requests to the backend (run, jobs) and two pages from GitHub, authenticated.
      expect(backendRoutesSince(before)).toEqual(['getRun', 'listJobs'])
      const pages = api.requests.slice(apiBefore)
      expect(pages.map(r => r.status)).toEqual([200, 200])
      expect(pages[0].path).toBe(
        `/repos/${REPOSITORY}/actions/runs/${DEFAULT_RUN_ID}/attempts/1/jobs?per_page=100`
      )
      expect(pages[1].path).toContain('page=2')
    })

    it('succeeds at once, with no request, for a plan with no jobs', async () => {
      const before = server.requests.length
      const apiBefore = api.requests.length
      for (const inputs of [{ 'job-count': '0', 'plan-file': 'missing.json' }, {}] as Array<
        Record<string, string>
      >) {
        const result = await runStatus(sharedPlanText('empty'), {
          'run-id': 'gha-7000000001-1-000000000000',
          'backend-url': '',
          ...inputs
        })
        expect(result.exitCode).toBe(0)
        expect(result.outputs.status).toBe('success')
        expect(result.outputs['not-run-jobs']).toBe('[]')
        expect(result.stdout).toMatch(/::notice::The plan has no jobs/)
        expect(result.summary).toContain('has no jobs')
      }
      expect(backendRoutesSince(before)).toEqual([])
      expect(api.requests.length).toBe(apiBefore)
    })

    it("shows jobs carried over from an earlier attempt, reading this attempt's run on a re-run", async () => {
      const plan = freshPlan(sharedPlanText('failing-upstream'))
      // Attempt 1's run failed; attempt 2 made its own run, carrying foundation over.
      await driveRun(plan, planRunId(plan, 1), { 'foundation@dev.smoke': 'failed' })
      await driveRun(plan, planRunId(plan, 2), {
        'foundation@dev.smoke': { carriedFrom: 1 },
        'api@dev.smoke': 'success',
        'web@dev.smoke': 'success'
      })

      const result = await runStatus(
        plan,
        { 'run-id': planRunId(plan, 1), 'github-token': '' },
        { GITHUB_RUN_ATTEMPT: '2' }
      )

      expect(result.exitCode).toBe(0)
      expect(result.outputs['run-id']).toBe(planRunId(plan, 2))
      expect(result.outputs.status).toBe('success')
      expect(JSON.parse(result.outputs.counts)).toMatchObject({ carried: 1, success: 2 })
      expect(result.summary).toContain(
        '"foundation@dev.smoke<br/>↻ carried over from attempt 1"]:::carried'
      )
      expect(result.summary).toMatch(
        /^\| foundation@dev\.smoke \| ↻ carried over from attempt 1 \|.*\| 1 \| – \|$/m
      )
      expect(result.summary).toMatch(/^\| api@dev\.smoke \| ✓ succeeded \|.*\| 2 \| – \|$/m)
    })
  })

  describe('status action: failures', () => {
    it('fails naming the failed and blocked jobs, annotates the failure and shows its log tail', async () => {
      const plan = freshPlan(sharedPlanText('failing-upstream'))
      const runId = planRunId(plan)
      const log = Array.from({ length: 60 }, (_, i) => `log line ${i}`).join('\n') + '\n'
      const runners = await driveRun(plan, runId, { 'foundation@dev.smoke': 'failed' }, () => log)
      githubJobsFor(runners)
      const before = server.requests.length

      const result = await runStatus(plan, { 'run-id': runId })

      expect(result.exitCode).toBe(1)
      const errors = annotations(result)
      expect(errors).toEqual([
        '::error title=foundation@dev.smoke::foundation@dev.smoke: orun exited with code 3',
        `::error::orun run ${runId} is failed: 1 failed (foundation@dev.smoke); 2 blocked (api@dev.smoke, web@dev.smoke).`
      ])
      expect(result.outputs.status).toBe('failed')
      expect(JSON.parse(result.outputs['failed-jobs'])).toEqual(['foundation@dev.smoke'])
      expect(JSON.parse(result.outputs['blocked-jobs'])).toEqual(['api@dev.smoke', 'web@dev.smoke'])
      expect(JSON.parse(result.outputs['not-run-jobs'])).toEqual([])
      const summary = result.summary
      expect(summary.startsWith('## ❌ orun run failed')).toBe(true)
      expect(summary).toMatch(/"foundation@dev\.smoke<br\/>✗ failed in [\d.]+s"\]:::failed/)
      expect(summary).toContain('"web@dev.smoke<br/>⊘ blocked by foundation@dev.smoke"]:::blocked')
      expect(summary).toContain('<details><summary>✗ foundation@dev.smoke</summary>')
      expect(summary).toContain('```text\norun exited with code 3\nfoundation@dev.smoke broke\n```')
      const tail = Array.from({ length: 40 }, (_, i) => `log line ${i + 20}`).join('\n')
      expect(summary).toContain('```text\n' + tail + '\n```')
      expect(summary).not.toContain('log line 19\n')
      expect(summary).toMatch(
        /\[Full log on GitHub\]\(https:\/\/github\.com\/octo-org\/octo-repo\/actions\/runs\/7000000001\/job\/\d+\)/
      )
      expect(backendRoutesSince(before)).toEqual(['getRun', 'listJobs', 'readLog'])
    })

    it('keeps hostile job ids and errors from injecting workflow commands', async () => {
      const evil = 'evil\n::warning::injected\r\n::add-mask::x'
      const file: PlanFile = {
        metadata: { checksum: `sha256-${randomBytes(32).toString('hex')}` },
        jobs: [{ id: evil, component: 'evil', environment: 'dev', checkName: `${evil} check` }]
      }
      const plan = parsePlan(JSON.stringify(file), 'plan.json')
      const runId = planRunId(plan)
      await driveRun(plan, runId, { [evil]: 'failed' })
      const result = await runStatus(plan, { 'run-id': runId, 'github-token': '' })
      expect(result.exitCode).toBe(1)
      const lines = result.stdout.split('\n')
      expect(lines.filter(line => line.startsWith('::warning::'))).toEqual([])
      expect(lines.filter(line => line.startsWith('::add-mask::x'))).toEqual([])
      // The annotation and the failure line carry the id, escaped by the workflow-command encoding.
      expect(annotations(result)).toHaveLength(2)
      expect(annotations(result)[0]).toContain('evil%0A::warning::injected%0D%0A::add-mask::x')
      expect(JSON.parse(result.outputs['failed-jobs'])).toEqual([evil])
    })

    it('reports but does not fail with fail-on: none', async () => {
      const plan = freshPlan(sharedPlanText('failing-upstream'))
      const runId = planRunId(plan)
      await driveRun(plan, runId, { 'foundation@dev.smoke': 'failed' })
      const result = await runStatus(plan, {
        'run-id': runId,
        'fail-on': 'none',
        'github-token': ''
      })
      expect(result.exitCode).toBe(0)
      expect(result.outputs.status).toBe('failed')
      expect(annotations(result)).toHaveLength(1)
    })
  })
})

describe('status action: the 2026-05-08 build', () => {
  useBuild('2026-05-08')

  it('names a lost runner as lost, with its GitHub job, not as a failure of its steps', async () => {
    const plan = freshPlan(sharedPlanText('failing-upstream'))
    const runId = planRunId(plan)
    const runners = await driveRun(plan, runId, { 'foundation@dev.smoke': 'running' })
    githubJobsFor(runners)
    // The runner went silent: a dependent's claim makes the backend's sweep fail the job.
    server.setOptions({ heartbeatTimeoutMs: 0 })
    try {
      const claim = await directClient().claim(runId, 'api@dev.smoke', 'dependent-runner')
      expect(claim).toMatchObject({ claimed: false, depsBlocked: true })
    } finally {
      server.setOptions({ heartbeatTimeoutMs: 300_000 })
    }
    expect(server.jobsOf(runId)[0].lastError).toBe(HEARTBEAT_TIMEOUT_ERROR)
    const before = server.requests.length

    const result = await runStatus(plan, { 'run-id': runId })

    expect(result.exitCode).toBe(1)
    const runner = server.jobsOf(runId)[0].runnerId!
    expect(annotations(result)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^::error title=foundation@dev\\.smoke%3A runner lost::foundation@dev\\.smoke: runner lost: runner ${runner} \\(https://github\\.com/octo-org/octo-repo/actions/runs/\\d+/job/\\d+\\) stopped heartbeating mid-job`
        )
      ),
      `::error::orun run ${runId} is failed: 1 runner lost (foundation@dev.smoke); 2 blocked (api@dev.smoke, web@dev.smoke).`
    ])
    expect(result.stdout).toContain('::notice::The job never finished')
    expect(result.summary).toContain(
      '<details><summary>✗ foundation@dev.smoke: runner lost</summary>'
    )
    expect(result.summary).toContain('"foundation@dev.smoke<br/>✗ runner lost"]:::failed')
    expect(result.summary).not.toContain('Error reported to the backend')
    // A lost runner's log says nothing about why: no log tail is read for it.
    expect(backendRoutesSince(before)).toEqual(['getRun', 'listJobs'])
  })

  it('reads a run the backend dropped to its copy: statuses from the copy, the DAG from the plan', async () => {
    const plan = freshPlan(sharedPlanText('failing-upstream'))
    const runId = planRunId(plan)
    await driveRun(plan, runId, { 'foundation@dev.smoke': 'failed' })
    expect(server.dropLiveState(runId)).toBe(true)

    const result = await runStatus(plan, { 'run-id': runId, 'github-token': '' })

    expect(result.exitCode).toBe(1)
    expect(result.outputs.status).toBe('failed')
    expect(JSON.parse(result.outputs['failed-jobs'])).toEqual(['foundation@dev.smoke'])
    // The copy lists no dependencies: the blocked jobs are still seen through the plan's.
    expect(JSON.parse(result.outputs['blocked-jobs'])).toEqual(['api@dev.smoke', 'web@dev.smoke'])
    expect(result.summary).toContain(
      '"web@dev.smoke<br/>⊘ blocked by foundation@dev.smoke"]:::blocked'
    )
  })
})

describe('status action: jobs that never ran (a cancelled matrix)', () => {
  it('is incomplete when the run exists but some jobs were never claimed', async () => {
    const plan = freshPlan(sharedPlanText('remote-state-matrix'))
    const runId = planRunId(plan)
    await driveRun(plan, runId, {
      'foundation@dev.smoke': 'success',
      'foundation@stage.smoke': 'running'
    })
    const result = await runStatus(plan, { 'run-id': runId, 'github-token': '' })

    const message = expectCleanFailure(result)
    expect(message).toBe(
      `orun run ${runId} is incomplete: 5 never ran or did not finish (api@dev.smoke, web@dev.smoke, foundation@stage.smoke, api@stage.smoke, web@stage.smoke).`
    )
    expect(result.outputs.status).toBe('incomplete')
    expect(JSON.parse(result.outputs['not-run-jobs'])).toEqual([
      'api@dev.smoke',
      'web@dev.smoke',
      'foundation@stage.smoke',
      'api@stage.smoke',
      'web@stage.smoke'
    ])
    expect(result.summary).toContain('"api@dev.smoke<br/>○ never ran"]:::notrun')
    expect(result.summary).toContain(
      '"foundation@stage.smoke<br/>… no result #40;still running#41;"]:::running'
    )

    const tolerant = await runStatus(plan, {
      'run-id': runId,
      'github-token': '',
      'fail-on': 'failed,blocked'
    })
    expect(tolerant.exitCode).toBe(0)
    expect(tolerant.outputs.status).toBe('incomplete')
  })

  it('is incomplete, saying why, when no runner ever created the run', async () => {
    const plan = freshPlan(sharedPlanText('failing-upstream'))
    const runId = planRunId(plan)
    const before = server.requests.length
    const result = await runStatus(plan, { 'run-id': runId, 'github-token': '' })

    const message = expectCleanFailure(result)
    expect(message).toMatch(/is incomplete: 3 never ran or did not finish/)
    expect(result.outputs.status).toBe('incomplete')
    expect(JSON.parse(result.outputs['not-run-jobs'])).toHaveLength(3)
    expect(result.summary).toContain('⚠️ orun run incomplete')
    expect(result.summary).toMatch(/does not exist on the backend&#58; no runner claimed any/)
    expect(result.stdout).toMatch(/::notice::Run gha-.* does not exist on the backend/)
    expect(result.summary).not.toContain('gantt')
    // GET run answered 404: nothing else to read.
    expect(backendRoutesSince(before)).toEqual(['getRun'])
  })
})

describe('status action: the backend is down', () => {
  // Calls retry for a time budget (5 minutes); ORUN_ACTION_BUDGET_SCALE shrinks it to 3 s here.
  it('retries 5xx answers, then fails with one clear line', async () => {
    const plan = freshPlan(sharedPlanText('single'))
    const runId = planRunId(plan)
    server.inject('getRun', { kind: 'status', status: 503, count: 10_000 })
    const before = server.requests.length
    try {
      const result = await runStatus(
        plan,
        { 'run-id': runId, 'github-token': '' },
        { ORUN_ACTION_BUDGET_SCALE: '0.01' }
      )
      const message = expectCleanFailure(result)
      expect(message).toMatch(
        /^The backend answered 503 .* while reading run gha-.*, through every retry, after \d+ attempts over [34]s: the backend \(or a proxy in front of it\) is failing/
      )
      const attempts = backendRoutesSince(before)
      expect(attempts.length).toBeGreaterThan(2)
      expect(attempts).toEqual(Array(attempts.length).fill('getRun'))
      expect(result.stdout.match(/retrying in \d+ ms/g)).toHaveLength(attempts.length - 1)
    } finally {
      server.clearFaults()
    }
  })

  it('says the backend cannot be reached when nothing answers', async () => {
    const plan = freshPlan(sharedPlanText('single'))
    const closed = await startCoordinationServer({ rateLimit: false })
    const url = closed.url
    await closed.close()
    const result = await runStatus(
      plan,
      {
        'run-id': planRunId(plan),
        'github-token': '',
        'backend-url': url
      },
      { ORUN_ACTION_BUDGET_SCALE: '0.01' }
    )
    expect(expectCleanFailure(result)).toMatch(
      /^Could not reach the backend while reading run gha-.*, after \d+ attempts over [34]s: .*ECONNREFUSED.*Check that the service at 'backend-url'/
    )
    expect(result.stdout.match(/retrying in \d+ ms/g)!.length).toBeGreaterThan(1)
  })
})

describe('status action: the GitHub job lookup', () => {
  it('writes the summary without links, and says why, when there is no github-token', async () => {
    const plan = freshPlan(sharedPlanText('single'))
    const runId = planRunId(plan)
    await driveRun(plan, runId, { 'solo@dev.smoke': 'success' })
    const apiBefore = api.requests.length
    const result = await runStatus(plan, { 'run-id': runId, 'github-token': '' })
    expect(result.exitCode).toBe(0)
    expect(result.outputs.status).toBe('success')
    expect(result.summary).toMatch(/^\| solo@dev\.smoke \| ✓ succeeded \|.*\| 1 \| – \|$/m)
    expect(result.summary).toContain('> No &#39;github&#45;token&#39;'.replace('&#45;', '-'))
    expect(api.requests.length).toBe(apiBefore)
  })

  it('retries a GitHub 502, and without actions: read writes the summary without links', async () => {
    const plan = freshPlan(sharedPlanText('single'))
    const runId = planRunId(plan)
    const runners = await driveRun(plan, runId, { 'solo@dev.smoke': 'success' })
    githubJobsFor(runners)
    api.failNext(1, 502)
    const apiBefore = api.requests.length
    const linked = await runStatus(plan, { 'run-id': runId })
    expect(linked.exitCode).toBe(0)
    expect(linked.summary).toMatch(
      /^\| solo@dev\.smoke \|.*\| \[log\]\(https:\/\/github\.com\/.*\) \|$/m
    )
    expect(api.requests.slice(apiBefore).map(r => r.status)).toEqual([502, 200])

    const refused = await runStatus(plan, { 'run-id': runId, 'github-token': READ_ONLY_TOKEN })
    expect(refused.exitCode).toBe(0)
    expect(refused.outputs.status).toBe('success')
    expect(refused.stdout).toMatch(
      /::notice::Listing this run's jobs through the GitHub API failed \(HTTP 403/
    )
    expect(refused.stdout).toContain("needs 'actions: read'")
    expect(refused.summary).not.toContain('[log](')
  })
})

describe('status action: a 1,000-job plan', () => {
  it('stays under 1 MiB, draws environments, and reads only the first 10 failed logs', async () => {
    const environments = ['dev', 'qa', 'stage', 'prod']
    const jobs = Array.from({ length: 1000 }, (_, i) => {
      const env = environments[i % 4]
      const level = Math.floor(i / 125)
      return {
        id: `service-${String(i).padStart(4, '0')}.${env}.deploy`,
        component: `service-${String(i).padStart(4, '0')}`,
        environment: env,
        checkName: `service-${String(i).padStart(4, '0')} · ${env} · Deploy`,
        dependsOn: level
          ? [`service-${String(i - 125).padStart(4, '0')}.${environments[(i - 125) % 4]}.deploy`]
          : [],
        steps: [{ id: 'main', run: 'echo deploy' }]
      }
    })
    const plan = freshPlan(
      JSON.stringify({ apiVersion: 'orun.io/v1', metadata: { checksum: 'sha256-0' }, jobs })
    )
    const runId = planRunId(plan)
    // Level 0..3 run; 12 jobs of level 3 fail (their descendants are blocked); levels 4.. never run.
    const drive: Record<string, Drive> = {}
    for (const job of plan.order) {
      const index = Number(job.component!.slice('service-'.length))
      if (index < 500) drive[job.id] = index >= 375 && index < 387 ? 'failed' : 'success'
    }
    const client = directClient()
    await client.createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
    await server.whenVisible(runId)
    const ids = Object.keys(drive)
    for (let start = 0; start < ids.length; start += 25) {
      await Promise.all(
        ids.slice(start, start + 25).map(async (jobId, k) => {
          const runnerId = `GitHub Actions ${start + k}-1-1-aa`
          expect((await client.claim(runId, jobId, runnerId)).claimed).toBe(true)
          if (drive[jobId] === 'failed') await client.uploadLog(runId, jobId, `${jobId} broke\n`)
          await client.update(
            runId,
            jobId,
            runnerId,
            drive[jobId] as 'success' | 'failed',
            drive[jobId] === 'failed' ? 'exit 3' : undefined
          )
        })
      )
    }
    const before = server.requests.length

    const result = await runStatus(plan, { 'run-id': runId, 'github-token': '' })

    expect(result.exitCode).toBe(1)
    expect(JSON.parse(result.outputs.counts)).toMatchObject({
      success: 488,
      failed: 12,
      blocked: 12 * 4,
      'not-run': 500 - 48
    })
    expect(Buffer.byteLength(result.summary)).toBeLessThan(1024 * 1024)
    expect(result.summary.match(/^ {2}e\d\[/gm)).toHaveLength(4)
    expect(result.summary).toMatch(/Log tails are shown for the first 10 failed jobs only; 2 more/)
    expect(backendRoutesSince(before)).toEqual(['getRun', 'listJobs', ...Array(10).fill('readLog')])
    // 9 job annotations and the step's own failure line.
    expect(annotations(result)).toHaveLength(10)
    expect(result.summary.split('\n').filter(l => /^\| service-\d{4}/.test(l))).toHaveLength(1000)
  }, 180_000)
})

describe('status action: inputs', () => {
  it.each<[string, Record<string, string>, RegExp]>([
    ['an unknown fail-on', { 'fail-on': 'sometimes' }, /Input 'fail-on' has 'sometimes'/],
    [
      'no run-id (the plan job failed)',
      { 'run-id': '' },
      /Input 'run-id' is required.*plan job failed/
    ],
    ['a bad job-count', { 'job-count': 'many' }, /Input 'job-count' must be a whole number/],
    [
      'a plan-id of another plan',
      { 'plan-id': '000000000000' },
      /Input 'plan-id' is '000000000000'/
    ]
  ])('refuses %s, with no request', async (_what, inputs, message) => {
    const plan = freshPlan(sharedPlanText('single'))
    const before = server.requests.length
    const result = await runStatus(plan, { 'run-id': planRunId(plan), ...inputs })
    expect(expectCleanFailure(result)).toMatch(message)
    expect(backendRoutesSince(before)).toEqual([])
  })
})
