/**
 * The local end-to-end demo (`npm run demo`): the whole orun action workflow
 * on this machine, against the local coordination server and the stand-in orun.
 */
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  BACKEND_BUILDS,
  isBackendBuild,
  type BackendBuild
} from '../testing/coordination-server.js'
import { DEMO_SECRET, Harness, ROOT, checkExecutions, type RunnerHandle } from './harness.js'
import { rerunScenario } from './rerun-scenario.js'
import { statusStep } from './status-step.js'

interface PlanJobLite {
  id: string
  dependsOn?: string[]
}

const firstAndLast = (text: string) => {
  const lines = text.split('\n').filter(line => line.trim())
  return lines.length > 1 ? `${lines[0]} … ${lines[lines.length - 1]}` : (lines[0] ?? '')
}
const bold = (text: string) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text)
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`.padStart(6)

async function scenario(
  build: BackendBuild,
  title: string,
  intent: string,
  extraRunners: (jobs: string[]) => Array<[string, Record<string, string>]>
) {
  console.log(`\n${bold(`=== ${title} (backend build ${build}) ===`)}`)
  const harness = await new Harness({ server: { build } }).start()
  try {
    const plan = await harness.plan(intent, { 'backend-url': harness.server.url })
    if (plan.exitCode !== 0) throw new Error(`plan action failed:\n${plan.stdout}`)
    const { 'run-id': runId, 'plan-id': planId, 'plan-file': planFile } = plan.outputs
    const matrix = JSON.parse(plan.outputs.jobs) as Array<{
      job: string
      env: string
      component: string
      name: string
      'runs-on': string
    }>
    const planText = JSON.parse(readFileSync(planFile, 'utf8')) as {
      apiVersion: string
      execution: { concurrency: number }
      jobs: PlanJobLite[]
    }
    const planJobs = planText.jobs
    console.log(
      `plan ${planId} (${planText.apiVersion}, execution.concurrency ${planText.execution.concurrency}), run ${runId}`
    )
    console.log('matrix (name  job  runs-on):')
    for (const m of matrix)
      console.log(`  ${m.name.padEnd(26)} ${m.job.padEnd(24)} ${m['runs-on']}`)
    console.log(
      'DAG:',
      planJobs.map(j => `${(j.dependsOn ?? []).join('+') || '(root)'} -> ${j.id}`).join('; ')
    )

    const common = {
      'run-id': runId,
      'plan-id': planId,
      'plan-file': planFile,
      'heartbeat-interval': '5s',
      'log-upload-interval': '2s',
      'redact-env': 'DEMO_SECRET'
    }
    const t0 = Date.now()
    const runners: RunnerHandle[] = [
      ...matrix.map(m => harness.startRunner(m.job, intent, { ...common, job: m.job })),
      ...extraRunners(matrix.map(m => m.job)).map(([label, inputs]) =>
        harness.startRunner(label, intent, { ...common, ...inputs })
      )
    ]
    console.log(
      `started ${runners.length} runner processes at once: ${runners.map(r => r.label).join(', ')}\n`
    )

    // Live view: one line whenever a job's state changes on the server.
    let last = ''
    const live = setInterval(() => {
      const line = harness.server
        .jobsOf(runId)
        .map(j => `${j.jobId}=${j.status}`)
        .join('  ')
      if (line !== last) console.log(`${secs(Date.now() - t0)}  ${line}`)
      last = line
    }, 250)
    const finished = await Promise.all(runners.map(r => r.done))
    clearInterval(live)

    const executions = harness.executions()
    const stored = new Map(harness.server.jobsOf(runId).map(j => [j.jobId, j]))
    console.log(`\n${bold('runner results')}`)
    runners.forEach((runner, i) => {
      const { main } = finished[i]
      const error = /^::error::(.*)$/m.exec(main.stdout)?.[1]?.replace(/%0A/g, ' | ')
      console.log(
        `  ${runner.label.padEnd(28)} exit ${main.exitCode}  status=${(main.outputs.status ?? '-').padEnd(16)} ${error ?? ''}`
      )
    })
    console.log(`\n${bold('jobs')} (times relative to the runners' start)`)
    console.log(
      `  ${'job'.padEnd(24)} ${'ran on'.padEnd(26)} ${'start'.padStart(6)} ${'end'.padStart(6)} ${'deps done'.padStart(9)}  status   error`
    )
    for (const job of planJobs) {
      const run = executions.find(e => e.job === job.id)
      const depsDone = Math.max(
        0,
        ...(job.dependsOn ?? []).map(d => executions.find(e => e.job === d)?.end ?? 0)
      )
      const record = stored.get(job.id)
      console.log(
        `  ${job.id.padEnd(24)} ${harness.labelOf(record?.runnerId ?? null).padEnd(26)} ${run ? secs(run.start - t0) : '     -'} ${run ? secs(run.end - t0) : '     -'} ${depsDone ? secs(depsDone - t0).padStart(9) : '        -'}  ${(record?.status ?? '?').padEnd(8)} ${firstAndLast(record?.lastError ?? '')}`
      )
    }
    console.log(`\n${bold('logs fetched back from the server')}`)
    for (const job of planJobs) {
      const log = await harness.fetchLog(runId, job.id)
      console.log(`--- ${job.id} ${log === undefined ? '(no log)' : ''}`)
      if (log)
        console.log(
          log
            .trimEnd()
            .split('\n')
            .map(l => `    ${l}`)
            .join('\n')
        )
      if (log?.includes(DEMO_SECRET)) console.log('    !!! the secret was not redacted')
    }
    const requests = harness.server.requests.filter(r => r.route !== 'token' && r.route !== 'jwks')
    console.log(
      `\nbackend requests: ${requests.length}, rate-limited: ${requests.filter(r => r.status === 429).length}, tokens minted: ${harness.server.tokensMinted}`
    )
    await statusStep(harness, { 'run-id': runId, 'plan-id': planId, 'plan-file': planFile })
    return { planJobs, executions, stored }
  } finally {
    await harness.close()
  }
}

// A deployment does not say which build of orun-backend it runs: the demo runs every scenario on
// each (ORUN_DEMO_BUILD=2026-05-02 or 2026-05-08 picks one).
const chosen = process.env.ORUN_DEMO_BUILD || undefined
if (chosen !== undefined && !isBackendBuild(chosen)) {
  throw new Error(`ORUN_DEMO_BUILD must be one of ${BACKEND_BUILDS.join(', ')}, got "${chosen}"`)
}
const builds: readonly BackendBuild[] = chosen !== undefined ? [chosen] : BACKEND_BUILDS
const intent = join(ROOT, 'demo', 'intent')
const problems: string[] = []
for (const build of builds) {
  const ok = await scenario(
    build,
    'remote-state-matrix: 6 jobs, one runner each, plus a duplicate entry and an environment fan-out pair',
    intent,
    () => [
      ['duplicate api.dev.smoke', { job: 'api.dev.smoke' }],
      ['fan-out env=dev', { environments: 'dev' }],
      ['fan-out env=stage', { environments: 'stage' }]
    ]
  )
  const found = checkExecutions({ jobs: ok.planJobs }, ok.executions)
  console.log(
    found.length
      ? `PROBLEMS (build ${build}):\n${found.join('\n')}`
      : `every job ran exactly once, after its dependencies (build ${build}).`
  )
  problems.push(...found)

  const failing = await scenario(
    build,
    'failing upstream: foundation exits 3, its dependents are blocked',
    join(intent, 'failing'),
    () => []
  )
  const blocked = [...failing.stored.values()].filter(j => j.status === 'pending').map(j => j.jobId)
  console.log(`not run (blocked by the failed upstream): ${blocked.join(', ') || 'none'}`)
  problems.push(...(await rerunScenario(mkdtempSync(join(tmpdir(), 'orun-demo-rerun-')), build)))
}
process.exitCode = problems.length ? 1 : 0
