/**
 * "Re-run failed jobs", the way GitHub does it, on this machine: attempt 1 of a
 * DAG with a flaky job that fails, then attempt 2 with only the failed and
 * blocked jobs' runners (the plan job is not re-run, so they get attempt 1's
 * run id), the flake gone. Shared by the demo (`npm run demo`) and the tests.
 */
import { DEFAULT_BACKEND_BUILD, type BackendBuild } from '../testing/coordination-server.js'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Harness, type ProcessResult } from './harness.js'

export interface IntentShape {
  name: string
  environments: string[]
  components: Array<{ name: string; dependsOn?: string[] }>
}

/** foundation -> api -> web, plus worker on foundation and an independent docs, in dev and stage: 10 jobs. */
export const RERUN_SHAPE: IntentShape = {
  name: 'rerun-demo',
  environments: ['dev', 'stage'],
  components: [
    { name: 'foundation' },
    { name: 'api', dependsOn: ['foundation'] },
    { name: 'web', dependsOn: ['api'] },
    { name: 'worker', dependsOn: ['foundation'] },
    { name: 'docs' }
  ]
}

/**
 * Writes an intent whose jobs fail (exit 3) while a marker file `broken-<component>-<env>`
 * sits in the workspace: the plan is the same in every attempt, only the world changed.
 * `broken` lists `<component>@<env>` names.
 */
export function writeFlakyIntent(dir: string, shape: IntentShape, broken: string[] = []): string {
  mkdirSync(dir, { recursive: true })
  const lines = [`name: ${shape.name}`, `environments: [${shape.environments.join(', ')}]`]
  lines.push('components:')
  for (const component of shape.components) {
    const c = component.name
    lines.push(`  - name: ${c}`, '    composition: terraform', `    path: apps/${c}`)
    if (component.dependsOn?.length)
      lines.push(`    dependsOn: [${component.dependsOn.join(', ')}]`)
    lines.push(
      `    run: 'if [ -e "broken-${c}-$ENV" ]; then echo "${c} $ENV broke (flaky)" >&2; exit 3; fi; echo "${c} $ENV start" && sleep 0.3 && echo "${c} $ENV done"'`
    )
  }
  writeFileSync(join(dir, 'intent.yaml'), lines.join('\n') + '\n')
  for (const name of broken) writeFileSync(join(dir, `broken-${name.replace('@', '-')}`), '')
  return dir
}

export interface PlannedRun {
  runId: string
  planId: string
  jobs: string[]
  common: Record<string, string>
  /** The job id of `<component>@<env>`, read from the plan's component and environment fields. */
  idOf: (pair: string) => string
}

/** Runs the plan action (attempt = harness.attempt) and returns what the matrix runners get. */
export async function planRun(
  harness: Harness,
  intent: string,
  inputs: Record<string, string> = {}
): Promise<PlannedRun> {
  const plan = await harness.plan(intent, { 'backend-url': harness.server.url, ...inputs })
  if (plan.exitCode !== 0) throw new Error(`plan action failed:\n${plan.stdout}`)
  const runId = plan.outputs['run-id']
  const planId = plan.outputs['plan-id']
  const planJobs = (
    JSON.parse(readFileSync(plan.outputs['plan-file'], 'utf8')) as {
      jobs: Array<{ id: string; component: string; environment: string }>
    }
  ).jobs
  const ids = new Map(planJobs.map(j => [`${j.component}@${j.environment}`, j.id]))
  return {
    runId,
    planId,
    idOf: pair => {
      const id = ids.get(pair)
      if (!id) throw new Error(`no job for ${pair} in the plan`)
      return id
    },
    jobs: (JSON.parse(plan.outputs.jobs) as Array<{ job: string }>).map(j => j.job),
    common: {
      'run-id': runId,
      'plan-id': planId,
      'plan-file': plan.outputs['plan-file'],
      'heartbeat-interval': '5s',
      'log-upload-interval': '2s'
    }
  }
}

export interface AttemptOutcome {
  attempt: number
  /** The job each runner was started for, and its main step's result. */
  runners: Array<{ job: string; label: string; main: ProcessResult }>
  /** The jobs whose runner failed: the legs "Re-run failed jobs" starts again. */
  failedLegs: string[]
}

/** One attempt of the matrix: a runner per job in `jobs`, all at once, in workspaces copied from `intent`. */
export async function runAttempt(
  harness: Harness,
  planned: PlannedRun,
  intent: string,
  jobs: string[],
  extraInputs: Record<string, string> = {}
): Promise<AttemptOutcome> {
  const handles = jobs.map(job =>
    harness.startRunner(job, intent, { ...planned.common, ...extraInputs, job })
  )
  const done = await Promise.all(handles.map(h => h.done))
  const runners = done.map(({ main }, i) => ({ job: jobs[i], label: handles[i].label, main }))
  return {
    attempt: harness.attempt,
    runners,
    failedLegs: [...new Set(runners.filter(r => r.main.exitCode !== 0).map(r => r.job))]
  }
}

const bold = (text: string) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text)

/** The demo's scenario, in workspaces under `root` (deleted after): prints what each attempt did; returns the problems found. */
export async function rerunScenario(
  root: string,
  build: BackendBuild = DEFAULT_BACKEND_BUILD
): Promise<string[]> {
  console.log(
    `\n${bold(`=== re-run failed jobs: api@dev is flaky in attempt 1, attempt 2 re-runs only the failed legs (backend build ${build}) ===`)}`
  )
  const harness = await new Harness({ server: { build } }).start()
  const problems: string[] = []
  try {
    const first = writeFlakyIntent(join(root, 'attempt-1'), RERUN_SHAPE, ['api@dev'])
    const second = writeFlakyIntent(join(root, 'attempt-2'), RERUN_SHAPE)
    const planned = await planRun(harness, first)
    console.log(`plan ${planned.planId}, run ${planned.runId}, ${planned.jobs.length} jobs`)

    const attempt1 = await runAttempt(harness, planned, first, planned.jobs)
    console.log(`attempt 1: failed legs ${attempt1.failedLegs.join(', ')}`)
    const before = harness.server.requests.length
    const executedBefore = harness.executions().length

    harness.attempt = 2
    const started = Date.now()
    const attempt2 = await runAttempt(harness, planned, second, attempt1.failedLegs)
    const runId2 = attempt2.runners[0].main.outputs['run-id']
    console.log(
      `attempt 2: ${attempt2.runners.length} runner(s) in run ${runId2}, done in ${((Date.now() - started) / 1000).toFixed(1)}s`
    )
    const executed = harness.executions().slice(executedBefore)
    console.log(`\n${bold('jobs in the attempt-2 run')}`)
    for (const job of harness.server.jobsOf(runId2)) {
      const ran = executed.filter(e => e.job === job.jobId)
      const how = ran.length ? `executed (exit ${ran.map(e => e.exitCode).join(',')})` : 'carried'
      console.log(
        `  ${job.jobId.padEnd(22)} ${job.status.padEnd(8)} ${how.padEnd(18)} ${job.lastError ?? ''}`
      )
      if (job.status !== 'success') problems.push(`${job.jobId} ended ${job.status} in attempt 2`)
    }
    for (const runner of attempt2.runners) {
      const results = JSON.parse(runner.main.outputs['job-results'] ?? '{}') as Record<
        string,
        { status: string; carriedFrom?: number }
      >
      const carried = Object.entries(results).filter(([, r]) => r.status === 'carried')
      console.log(
        `  runner ${runner.label}: exit ${runner.main.exitCode}, status ${runner.main.outputs.status}, carried over ${carried.length} job(s)`
      )
      if (runner.main.exitCode !== 0) problems.push(`${runner.label} failed in attempt 2`)
    }
    const requests = harness.server.requests
      .slice(before)
      .filter(r => r.route !== 'token' && r.route !== 'jwks')
    const byRoute = new Map<string, number>()
    for (const r of requests) byRoute.set(r.route, (byRoute.get(r.route) ?? 0) + 1)
    console.log(
      `\nattempt 2 backend requests: ${requests.length} (${[...byRoute].map(([k, v]) => `${k} ${v}`).join(', ')}), rate-limited: ${requests.filter(r => r.status === 429).length}`
    )
    const reExecuted = executed.filter(e => !attempt1.failedLegs.includes(e.job))
    if (reExecuted.length)
      problems.push(`earlier successes ran again: ${reExecuted.map(e => e.job).join(', ')}`)
    console.log(
      problems.length
        ? `PROBLEMS:\n${problems.join('\n')}`
        : 'every job ends success in the attempt-2 run; the earlier successes were carried over, not run again.'
    )
    return problems
  } finally {
    await harness.close()
    rmSync(root, { recursive: true, force: true })
  }
}
