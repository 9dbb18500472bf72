/**
 * The results record (src/common/results-record.ts): what each runner did, kept as a
 * workflow artifact, read by a later attempt when the backend no longer holds the run.
 * End to end through the bundled actions against the local server and the local stand-in
 * of GitHub's artifact service (testing/artifact-service.ts), which @actions/artifact talks
 * to for real; the backend's 24 h cleanup is `deleteRun`, run before attempt 2.
 */
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals'
import { mkdirSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HARNESS_WORKFLOW_RUN, Harness, type ProcessResult } from '../demo/harness.js'
import {
  planRun,
  runAttempt,
  writeFlakyIntent,
  type IntentShape,
  type PlannedRun
} from '../demo/rerun-scenario.js'
import {
  RECORD_PREFIX,
  downloadResultsRecords,
  listResultsRecords,
  parseRecordName,
  recordName,
  writeResultsRecord,
  type RecordedJob
} from '../src/common/results-record.js'
import { startArtifactService } from '../testing/artifact-service.js'
import { executedSince } from '../testing/rerun-checks.js'
import { readRecordedRun } from '../src/status/run-read.js'
import type { Plan } from '../src/plan/model.js'

jest.setTimeout(180_000)

/** foundation -> api -> web, and an independent docs: small, so each attempt takes seconds. */
const RERUN_SHAPE: IntentShape = {
  name: 'record-demo',
  environments: ['dev'],
  components: [
    { name: 'foundation' },
    { name: 'api', dependsOn: ['foundation'] },
    { name: 'web', dependsOn: ['api'] },
    { name: 'docs' }
  ]
}

let harness: Harness | undefined
afterEach(async () => {
  await harness?.close()
  harness = undefined
})

let current: PlannedRun
const id = (pair: string) => current.idOf(pair)
const ids = (pairs: string[]) => pairs.map(id).sort()

function carried(results: string | undefined): Array<[string, number | undefined]> {
  return Object.entries(
    JSON.parse(results ?? '{}') as Record<string, { status: string; carriedFrom?: number }>
  )
    .filter(([, r]) => r.status === 'carried')
    .map(([job, r]) => [job, r.carriedFrom] as [string, number | undefined])
}

function records(h: Harness) {
  return h.artifacts!.artifacts(HARNESS_WORKFLOW_RUN).filter(a => a.name.startsWith(RECORD_PREFIX))
}

/** The bundled status action, as the workflow's last job runs it (no GitHub token: no job links). */
async function statusStep(h: Harness, planned: PlannedRun): Promise<ProcessResult> {
  const env = h.baseEnv(join(h.dir, 'workspaces', `status-${h.attempt}`), `status-${h.attempt}`)
  mkdirSync(env.GITHUB_WORKSPACE!, { recursive: true })
  return h.spawnStep(
    'dist/status/index.js',
    env,
    {
      'run-id': planned.runId,
      'plan-id': planned.planId,
      'plan-file': planned.common['plan-file'],
      'backend-url': h.server.url,
      'fail-on': 'none'
    },
    join(h.dir, 'runners', `status-${h.attempt}`, 'files'),
    'status'
  ).done
}

describe('the results record', () => {
  it('names a runner’s outcomes so one list call answers a re-run, and falls back to its file when they do not fit', () => {
    const order = Array.from({ length: 400 }, (_, i) => ({ id: `app.dev.c${i}` }))
    const plan = { id: 'abcdef012345', order } as unknown as Plan
    const job = (jobId: string, status: RecordedJob['status']): RecordedJob => ({
      jobId,
      status,
      attempt: 1,
      runner: 'r'
    })
    const record = {
      version: 1 as const,
      runId: 'gha-4242-1-abcdef012345',
      planId: plan.id,
      attempt: 1,
      runner: 'run app.dev.c1#1-1-99-ab12cd',
      jobs: [
        job('app.dev.c0', 'success'),
        job('app.dev.c1', 'success'),
        job('app.dev.c2', 'success'),
        job('app.dev.c7', 'failed'),
        job('app.dev.c9', 'carried'),
        job('app.dev.c8', 'blocked')
      ]
    }
    const name = recordName(record, plan)
    expect(name).toBe('orun-results_gha-4242-1-abcdef012345_run app.dev.c1#1-1-99-ab12cd_s0-2f7c9')
    expect(parseRecordName(name, record.runId, plan)).toEqual({
      name,
      runId: record.runId,
      runner: record.runner,
      succeeded: ['app.dev.c0', 'app.dev.c1', 'app.dev.c2'],
      failed: ['app.dev.c7'],
      carried: ['app.dev.c9']
    })
    // Another attempt's record, or another artifact, is not this run's record.
    expect(parseRecordName(name, 'gha-4242-2-abcdef012345', plan)).toBeUndefined()
    expect(parseRecordName('orun-plan-gha-4242-1-abcdef012345', record.runId, plan)).toBeUndefined()
    // A pool worker that ran every other job: the positions do not fit in a name.
    const many = {
      ...record,
      jobs: order.filter((_, i) => i % 2 === 0).map(j => job(j.id, 'success'))
    }
    const long = recordName(many, plan)
    expect(long).toMatch(/_x$/)
    expect(long.length).toBeLessThanOrEqual(200)
    expect(parseRecordName(long, record.runId, plan)).toEqual({
      name: long,
      runId: record.runId,
      runner: record.runner
    })
  })
})

describe('the results record through @actions/artifact (in-process, against the stand-in)', () => {
  const saved = { ...process.env }
  // The artifact client logs its progress (and @actions/core its commands) to stdout.
  beforeEach(() => {
    jest.spyOn(process.stdout, 'write').mockImplementation(() => true)
  })
  afterEach(() => {
    jest.restoreAllMocks()
    for (const key of ['ACTIONS_RUNTIME_TOKEN', 'ACTIONS_RESULTS_URL', 'GITHUB_RETENTION_DAYS'])
      if (saved[key] === undefined) delete process.env[key]
      else process.env[key] = saved[key]
  })

  it('is written by one attempt, listed and read by the next, and missing outside GitHub', async () => {
    const service = await startArtifactService()
    try {
      const plan = {
        id: 'abcdef012345',
        order: [{ id: 'a' }, { id: 'b' }, { id: 'c' }]
      } as unknown as Plan
      const runId = 'gha-4242-1-abcdef012345'
      const record = {
        version: 1 as const,
        runId,
        planId: plan.id,
        attempt: 1,
        runner: 'runner-1',
        jobs: [
          { jobId: 'a', status: 'success' as const, attempt: 1, runner: 'runner-1' },
          { jobId: 'b', status: 'failed' as const, attempt: 1, runner: 'runner-1', error: 'exit 3' }
        ]
      }
      const warnings: string[] = []
      delete process.env.ACTIONS_RUNTIME_TOKEN
      expect(await writeResultsRecord(record, plan, w => warnings.push(w))).toBeUndefined()
      expect(await listResultsRecords([runId], plan)).toEqual({
        ok: false,
        problem: expect.stringContaining('ACTIONS_RUNTIME_TOKEN')
      })

      Object.assign(process.env, service.runtimeEnv('4242', 1, 'run'), {
        GITHUB_RETENTION_DAYS: '7'
      })
      const name = await writeResultsRecord(record, plan, w => warnings.push(w))
      expect(name).toBe(`${RECORD_PREFIX}${runId}_runner-1_s0f1c`)
      // Kept for the repository's retention when it is shorter than the 30-day re-run window.
      const [stored] = service.artifacts('4242')
      expect(Math.round((stored.expiresAt! - stored.createdAt) / 86_400_000)).toBe(7)
      // The same name again (a runner id reused): GitHub's 409 is a warning, not a failure.
      expect(await writeResultsRecord(record, plan, w => warnings.push(w))).toBeUndefined()
      expect(warnings).toEqual([expect.stringMatching(/409.*already exists/)])

      // Attempt 2 of the same workflow run sees it; another workflow run does not.
      Object.assign(process.env, service.runtimeEnv('4242', 2, 'run'))
      const listed = await listResultsRecords([runId], plan)
      expect(listed).toEqual({
        ok: true,
        records: [
          expect.objectContaining({ runId, runner: 'runner-1', succeeded: ['a'], failed: ['b'] })
        ]
      })
      const read = await downloadResultsRecords(listed.ok ? listed.records : [], plan.id)
      expect(read).toEqual([record])
      Object.assign(process.env, service.runtimeEnv('5151', 1, 'run'))
      expect(await listResultsRecords([runId], plan)).toEqual({ ok: true, records: [] })
    } finally {
      await service.close()
    }
  })

  it("is read back as the newest attempt's run when the backend no longer holds it (the status action's fallback)", async () => {
    const service = await startArtifactService()
    try {
      const jobIds = ['a', 'b', 'c']
      const plan = {
        id: 'abcdef012345',
        order: jobIds.map(jobId => ({ id: jobId })),
        byId: new Map(jobIds.map(jobId => [jobId, { id: jobId, component: `comp-${jobId}` }]))
      } as unknown as Plan
      const first = 'gha-4242-1-abcdef012345'
      const second = 'gha-4242-2-abcdef012345'
      const write = async (
        attempt: number,
        runner: string,
        jobs: Array<Omit<RecordedJob, 'runner'> & { runner?: string }>
      ) => {
        Object.assign(process.env, service.runtimeEnv('4242', attempt, runner))
        const runId = attempt === 1 ? first : second
        const record = {
          version: 1 as const,
          runId,
          planId: plan.id,
          attempt,
          runner,
          jobs: jobs.map(job => ({ runner, ...job }))
        }
        expect(await writeResultsRecord(record, plan, () => {})).toBeDefined()
      }
      const env = { GITHUB_RUN_ID: '4242', GITHUB_RUN_ATTEMPT: '2' }
      // Nothing written yet: no run, and no problem either.
      Object.assign(process.env, service.runtimeEnv('4242', 2, 'status'))
      expect(await readRecordedRun(first, plan, env)).toEqual({
        jobs: [],
        runners: 0,
        downloaded: 0
      })

      await write(1, 'runner-1', [
        { jobId: 'a', status: 'success', attempt: 1 },
        { jobId: 'b', status: 'failed', attempt: 1, error: 'exit 3' }
      ])
      await write(1, 'runner-2', [{ jobId: 'c', status: 'success', attempt: 1 }])
      await write(2, 'runner-3', [
        {
          jobId: 'b',
          status: 'success',
          attempt: 2,
          startedAt: '2026-12-03T10:00:00.000Z',
          endedAt: '2026-12-03T10:00:05.000Z'
        },
        { jobId: 'a', status: 'carried', attempt: 1, runner: 'runner-1' }
      ])
      await write(2, 'runner-4', [{ jobId: 'c', status: 'failed', attempt: 2, error: 'exit 7' }])

      Object.assign(process.env, service.runtimeEnv('4242', 2, 'status'))
      const read = await readRecordedRun(first, plan, env)
      // Attempt 2 is the newest with a record; one list call, and one download (the failure's text).
      expect(read).toMatchObject({ runId: second, runners: 2, downloaded: 1 })
      const byId = Object.fromEntries(read.jobs.map(job => [job.jobId, job]))
      expect(byId.a).toMatchObject({
        status: 'success',
        component: 'comp-a',
        runnerId: 'runner-3',
        lastError: 'carried over from attempt 1 (runner runner-1)'
      })
      expect(byId.b).toMatchObject({ status: 'success', runnerId: 'runner-3' })
      expect(byId.c).toMatchObject({ status: 'failed', runnerId: 'runner-4', lastError: 'exit 7' })

      // Without the runtime token (not on a GitHub runner) it says why instead.
      delete process.env.ACTIONS_RUNTIME_TOKEN
      expect(await readRecordedRun(first, plan, env)).toMatchObject({
        jobs: [],
        problem: expect.stringContaining('ACTIONS_RUNTIME_TOKEN')
      })
    } finally {
      await service.close()
    }
  })
})

describe('re-running after the backend deleted the earlier run', () => {
  it('matrix: carries the earlier successes from the record, runs the failed job and its dependent once; the status action reads the record when the run is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orun-record-'))
    harness = await new Harness().start()
    const intent = writeFlakyIntent(join(dir, 'attempt-1'), RERUN_SHAPE, ['api@dev'])
    const planned = (current = await planRun(harness, intent))
    const first = await runAttempt(harness, planned, intent, planned.jobs)
    expect(first.failedLegs.sort()).toEqual(ids(['api@dev', 'web@dev']))
    // One record per runner that executed or was blocked.
    expect(records(harness)).toHaveLength(planned.jobs.length)
    expect(harness.server.deleteRun(planned.runId)).toBe(true)
    const before = harness.executions().length
    const listsBefore = harness.artifacts!.stats.listCalls
    const downloadsBefore = harness.artifacts!.stats.downloads

    harness.attempt = 2
    const second = await runAttempt(
      harness,
      planned,
      writeFlakyIntent(join(dir, 'attempt-2'), RERUN_SHAPE),
      first.failedLegs
    )
    const runId2 = `gha-4242-2-${planned.planId}`
    for (const runner of second.runners) {
      expect(runner.main.exitCode).toBe(0)
      expect(runner.main.outputs['run-id']).toBe(runId2)
      expect(runner.main.stdout).toContain(
        `2 job(s) succeeded before (read from the results record of ${planned.runId})`
      )
    }
    const stored = harness.server.jobsOf(runId2)
    expect(stored.filter(j => j.status !== 'success' || j.claims !== 1)).toEqual([])
    expect(stored).toHaveLength(planned.jobs.length)
    // Exactly once overall: the fixed job and its dependent ran again, nothing else did.
    expect([...executedSince(harness, before).entries()].sort()).toEqual(
      ids(['api@dev', 'web@dev']).map(job => [job, [0]])
    )
    const successes = planned.jobs.filter(j => !first.failedLegs.includes(j)).sort()
    expect(
      second.runners
        .flatMap(r => carried(r.main.outputs['job-results']))
        .sort(([a], [b]) => a.localeCompare(b))
    ).toEqual(successes.map(job => [job, 1]))
    // Each carried job names the runner that executed it in attempt 1.
    for (const job of stored.filter(j => successes.includes(j.jobId)))
      expect(job.lastError).toMatch(
        /^carried over from attempt 1 \(runner .*#\d+-1-\d+-[0-9a-f]{6}\)$/
      )
    // The names answered: one list per runner, no download.
    expect(harness.artifacts!.stats.listCalls - listsBefore).toBe(second.runners.length)
    expect(harness.artifacts!.stats.downloads - downloadsBefore).toBe(0)

    // The status job started a day later: both attempts' runs are gone.
    expect(harness.server.deleteRun(runId2)).toBe(true)
    const status = await statusStep(harness, planned)
    expect(status.exitCode).toBe(0)
    expect(status.outputs.status).toBe('success')
    expect(status.outputs['run-id']).toBe(runId2)
    expect(JSON.parse(status.outputs.counts)).toMatchObject({ success: 2, carried: 2 })
    expect(status.summary).toContain('The backend no longer holds run')
    expect(status.summary).toContain('results record')

    // A record gone too (a runner's artifact deleted): that job reads not run, never success.
    const apiRecord = records(harness).find(a =>
      a.name.startsWith(`${RECORD_PREFIX}${runId2}_${id('api@dev')}#`)
    )
    expect(harness.artifacts!.deleteArtifact(HARNESS_WORKFLOW_RUN, apiRecord!.name)).toBe(true)
    const partial = await statusStep(harness, planned)
    expect(partial.outputs.status).toBe('incomplete')
    expect(JSON.parse(partial.outputs['not-run-jobs']).length).toBeGreaterThan(0)
  })

  it('pool: the failed worker, started again, carries the successes from the record and runs the rest once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orun-record-'))
    harness = await new Harness().start()
    const planned = (current = await planRun(
      harness,
      writeFlakyIntent(join(dir, 'attempt-1'), RERUN_SHAPE, ['api@dev'])
    ))
    const workers = (intent: string, indexes: number[]) =>
      Promise.all(
        indexes.map(async index => ({
          index,
          main: (
            await harness!.startRunner(`worker-${index}`, intent, {
              ...planned.common,
              'pool-size': '2',
              worker: String(index)
            }).done
          ).main
        }))
      )
    const first = await workers(join(dir, 'attempt-1'), [1, 2])
    const failedWorkers = first.filter(w => w.main.exitCode !== 0).map(w => w.index)
    expect(failedWorkers).toHaveLength(1)
    expect(harness.server.deleteRun(planned.runId)).toBe(true)
    const before = harness.executions().length

    harness.attempt = 2
    const second = await workers(
      writeFlakyIntent(join(dir, 'attempt-2'), RERUN_SHAPE),
      failedWorkers
    )
    expect(second[0].main.exitCode).toBe(0)
    expect(second[0].main.stdout).toContain(`read from the results record of ${planned.runId}`)
    const runId2 = `gha-4242-2-${planned.planId}`
    const stored = harness.server.jobsOf(runId2)
    expect(stored).toHaveLength(planned.jobs.length)
    expect(stored.filter(j => j.status !== 'success' || j.claims !== 1)).toEqual([])
    expect([...executedSince(harness, before).entries()].sort()).toEqual(
      ids(['api@dev', 'web@dev']).map(job => [job, [0]])
    )
    expect(carried(second[0].main.outputs['job-results']).sort()).toEqual(
      planned.jobs
        .filter(job => !ids(['api@dev', 'web@dev']).includes(job))
        .sort()
        .map(job => [job, 1])
    )
  })
})

describe('on the 2026-05-08 build', () => {
  it('status on the stored copy draws the DAG from the plan and never reads success; a re-run still carries from the copy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orun-record-'))
    harness = await new Harness({ server: { build: '2026-05-08' } }).start()
    const intent = writeFlakyIntent(join(dir, 'attempt-1'), RERUN_SHAPE, ['api@dev'])
    const planned = (current = await planRun(harness, intent))
    const first = await runAttempt(harness, planned, intent, planned.jobs)
    expect(harness.server.dropLiveState(planned.runId)).toBe(true)
    expect(harness.server.jobsOf(planned.runId).length).toBe(planned.jobs.length)

    const status = await statusStep(harness, planned)
    expect(status.outputs.status).toBe('failed')
    expect(JSON.parse(status.outputs['failed-jobs'])).toEqual([id('api@dev')])
    // The copy's dependencies are all []: web reads blocked by api only through the plan.
    expect(JSON.parse(status.outputs['blocked-jobs'])).toEqual([id('web@dev')])
    expect(status.summary).toContain('from its stored copy')

    const before = harness.executions().length
    harness.attempt = 2
    const second = await runAttempt(
      harness,
      planned,
      writeFlakyIntent(join(dir, 'attempt-2'), RERUN_SHAPE),
      first.failedLegs
    )
    for (const runner of second.runners) {
      expect(runner.main.exitCode).toBe(0)
      // The backend still holds the successes: no artifact is read.
      expect(runner.main.stdout).toContain(`(read from ${planned.runId})`)
    }
    const runId2 = `gha-4242-2-${planned.planId}`
    expect(
      harness.server.jobsOf(runId2).filter(j => j.status !== 'success' || j.claims !== 1)
    ).toEqual([])
    expect([...executedSince(harness, before).keys()].sort()).toEqual(ids(['api@dev', 'web@dev']))
  })

  it('after the run went to the copy and was then deleted: the re-run carries from the record, and the status action reads it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orun-record-'))
    harness = await new Harness({ server: { build: '2026-05-08' } }).start()
    const intent = writeFlakyIntent(join(dir, 'attempt-1'), RERUN_SHAPE, ['api@dev'])
    const planned = (current = await planRun(harness, intent))
    const first = await runAttempt(harness, planned, intent, planned.jobs)
    // Idle: the copy; a day later: the cleanup.
    expect(harness.server.dropLiveState(planned.runId)).toBe(true)
    expect(harness.server.deleteRun(planned.runId)).toBe(true)
    const before = harness.executions().length

    harness.attempt = 2
    const second = await runAttempt(
      harness,
      planned,
      writeFlakyIntent(join(dir, 'attempt-2'), RERUN_SHAPE),
      first.failedLegs
    )
    for (const runner of second.runners) {
      expect(runner.main.exitCode).toBe(0)
      expect(runner.main.stdout).toContain(`read from the results record of ${planned.runId}`)
    }
    expect([...executedSince(harness, before).entries()].sort()).toEqual(
      ids(['api@dev', 'web@dev']).map(job => [job, [0]])
    )
    const runId2 = `gha-4242-2-${planned.planId}`
    expect(harness.server.deleteRun(runId2)).toBe(true)
    const status = await statusStep(harness, planned)
    expect(status.outputs.status).toBe('success')
    expect(JSON.parse(status.outputs.counts)).toMatchObject({ success: 2, carried: 2 })
    expect(status.summary).toContain('The backend no longer holds run')
  })
})
