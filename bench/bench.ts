/**
 * `npm run bench`: the demo harness on the 40-job wide-deep DAG, each job
 * lasting 10 s (critical path 6 jobs = 60 s), all 40 runners started at once,
 * the real rate limit on (burst 20, 5/s per repository). It runs this action
 * and a baseline that follows orun's own client algorithm, one after the
 * other in the same process, and prints both side by side.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Harness, ROOT, checkExecutions } from '../demo/harness.js'
import { depthOf, parsePlan } from '../src/plan/model.js'

const JOB_SECONDS = Number(process.env.BENCH_JOB_SECONDS ?? 10)
const MODE_LIMIT_MS = 15 * 60_000
const fixture = resolve(ROOT, '..', 'shared', 'fixtures', 'plans', 'wide-deep.json')

interface PlanJob {
  id: string
  dependsOn?: string[]
  steps: Array<{ run: string }>
}

/** wide-deep with each job sleeping JOB_SECONDS, under a checksum of its own. */
function benchPlan(dir: string): { file: string; jobs: PlanJob[]; criticalPathJobs: number } {
  const plan = JSON.parse(readFileSync(fixture, 'utf8')) as {
    metadata: { checksum: string }
    jobs: PlanJob[]
  }
  for (const job of plan.jobs)
    for (const step of job.steps) step.run = step.run.replace(/sleep \d+/, `sleep ${JOB_SECONDS}`)
  plan.metadata.checksum = `sha256-${createHash('sha256').update(JSON.stringify(plan.jobs)).digest('hex')}`
  const file = join(dir, 'plan.json')
  writeFileSync(file, JSON.stringify(plan, null, 2))
  const parsed = parsePlan(JSON.stringify(plan), file)
  return {
    file,
    jobs: plan.jobs,
    criticalPathJobs: 1 + Math.max(...plan.jobs.map(j => depthOf(parsed, j.id)))
  }
}

interface Measured {
  makespanS: number
  meanDelayS: number
  p95DelayS: number
  requests: number
  rateLimited: number
  longest429RunS: number
  tokenMints: number
  problems: string[]
}

async function measure(mode: 'action' | 'baseline', workDir: string): Promise<Measured> {
  const harness = await new Harness().start()
  try {
    const { file, jobs } = benchPlan(workDir)
    const intent = mkdtempSync(join(tmpdir(), 'orun-bench-ws-'))
    mkdirSync(intent, { recursive: true })
    const plan = await harness.plan(intent, {
      'plan-file': file,
      ...(mode === 'action' ? { 'backend-url': harness.server.url } : {})
    })
    if (plan.exitCode !== 0) throw new Error(`plan failed:\n${plan.stdout}`)
    const common = {
      'run-id': plan.outputs['run-id'],
      'plan-id': plan.outputs['plan-id'],
      'plan-file': plan.outputs['plan-file']
    }
    const firstRequest = harness.server.requests.length
    const mintsBefore = harness.server.tokensMinted
    const t0 = Date.now()
    const program = mode === 'action' ? 'dist/run/index.js' : 'bench/baseline-runner.mjs'
    const runners = jobs.map(job =>
      harness.startRunner(job.id, intent, { ...common, job: job.id }, program)
    )
    // A stuck mode must not hang the benchmark: past the limit its runners are stopped.
    const limit = setTimeout(() => runners.forEach(r => harness.loseRunner(r)), MODE_LIMIT_MS)
    const results = await Promise.all(runners.map(r => r.done))
    clearTimeout(limit)
    const failedRunners = results.filter(r => r.main.exitCode !== 0).length

    const executions = harness.executions()
    const endOf = new Map(executions.map(e => [e.job, e.end]))
    const delays = executions
      .map(e => {
        const deps = jobs.find(j => j.id === e.job)!.dependsOn ?? []
        return deps.length
          ? (e.start - Math.max(...deps.map(d => endOf.get(d)!))) / 1000
          : undefined
      })
      .filter((d): d is number => d !== undefined)
      .sort((a, b) => a - b)
    const requests = harness.server.requests
      .slice(firstRequest)
      .filter(r => r.route !== 'token' && r.route !== 'jwks')
    let longest = 0
    let runStart: number | undefined
    let runEnd = 0
    for (const r of requests) {
      if (r.status === 429) {
        runStart ??= r.at
        runEnd = r.at
        longest = Math.max(longest, runEnd - runStart)
      } else runStart = undefined
    }
    const problems = checkExecutions({ jobs }, executions)
    if (failedRunners) problems.push(`${failedRunners} runner(s) failed`)
    return {
      makespanS: (Math.max(...executions.map(e => e.end)) - t0) / 1000,
      meanDelayS: delays.reduce((a, b) => a + b, 0) / delays.length,
      p95DelayS: delays[Math.min(delays.length - 1, Math.ceil(delays.length * 0.95) - 1)],
      requests: requests.length,
      rateLimited: requests.filter(r => r.status === 429).length,
      longest429RunS: longest / 1000,
      tokenMints: harness.server.tokensMinted - mintsBefore,
      problems
    }
  } finally {
    await harness.close()
  }
}

/**
 * Each bundle's size and its start-up time: from process start to its first
 * line of work (the plan action's first log line; the run action's first
 * request to the backend), median of several starts.
 */
async function measureStartup(workDir: string): Promise<void> {
  const { file } = benchPlan(workDir)
  const plan = JSON.parse(readFileSync(file, 'utf8')) as { jobs: PlanJob[] }
  const root = plan.jobs.find(j => !(j.dependsOn ?? []).length)!
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]
  const planTimes: number[] = []
  const runTimes: number[] = []
  for (let i = 0; i < 5; i++) {
    const harness = await new Harness().start()
    try {
      const ws = mkdtempSync(join(tmpdir(), 'orun-bench-ws-'))
      const started = Date.now()
      const planStep = harness.spawnStep(
        'dist/plan/index.js',
        harness.baseEnv(ws, `plan${i}`),
        { 'plan-file': file, upload: 'false' },
        join(harness.dir, `f${i}`),
        'plan'
      )
      const firstLine = await new Promise<number>(resolveLine =>
        planStep.child.stdout!.once('data', () => resolveLine(Date.now()))
      )
      planTimes.push(firstLine - started)
      const planned = await planStep.done
      const runner = harness.startRunner('startup', ws, {
        'run-id': planned.outputs['run-id'],
        'plan-file': planned.outputs['plan-file'],
        job: root.id
      })
      await until(() =>
        harness.server.requests.find(r => r.route !== 'token' && r.route !== 'jwks')
      )
      runTimes.push(
        harness.server.requests.find(r => r.route !== 'token' && r.route !== 'jwks')!.at -
          runner.startedAt
      )
      harness.loseRunner(runner)
      await runner.done
    } finally {
      await harness.close()
    }
  }
  const size = (dir: string) =>
    readdirSync(join(ROOT, 'dist', dir))
      .filter(name => name.endsWith('.js'))
      .map(
        name => `${name} ${(statSync(join(ROOT, 'dist', dir, name)).size / 1024).toFixed(0)} KiB`
      )
      .join(', ')
  console.log('bundles:')
  for (const dir of ['install', 'plan', 'run', 'run-post'])
    console.log(`  dist/${dir}: ${size(dir)}`)
  console.log(
    `start-up (median of 5, process start to first line of work): plan ${median(planTimes)} ms, run ${median(runTimes)} ms (to its first backend request)\n`
  )
}

async function until<T>(probe: () => T | undefined): Promise<T> {
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

const workDir = mkdtempSync(join(tmpdir(), 'orun-bench-'))
if (process.env.BENCH_STARTUP !== '0') await measureStartup(workDir)
const { criticalPathJobs, jobs } = benchPlan(workDir)
const criticalPathS = criticalPathJobs * JOB_SECONDS
console.log(
  `wide-deep: ${jobs.length} jobs of ${JOB_SECONDS}s, critical path ${criticalPathJobs} jobs = ${criticalPathS}s; 40 runners at once; rate limit burst 20, 5/s`
)
const modes = (process.env.BENCH_MODES ?? 'action,baseline').split(',') as Array<
  'action' | 'baseline'
>
const results: Record<string, Measured> = {}
for (const mode of modes) {
  process.stdout.write(`running ${mode}... `)
  results[mode] = await measure(mode, workDir)
  console.log(`done (${results[mode].makespanS.toFixed(1)}s)`)
}

const rows: Array<[string, (m: Measured) => string]> = [
  ['makespan (s)', m => m.makespanS.toFixed(1)],
  ['makespan / critical path', m => (m.makespanS / criticalPathS).toFixed(2)],
  ['dep→start delay mean (s)', m => m.meanDelayS.toFixed(2)],
  ['dep→start delay p95 (s)', m => m.p95DelayS.toFixed(2)],
  ['requests sent', m => String(m.requests)],
  ['429s received', m => String(m.rateLimited)],
  ['longest run of 429s (s)', m => m.longest429RunS.toFixed(2)],
  ['token mints', m => String(m.tokenMints)],
  ['correctness problems', m => String(m.problems.length)]
]
console.log(
  `\n| metric | ${modes.join(' | ')} |${modes.length === 2 ? ' action / baseline |' : ''}`
)
console.log(`|---|${modes.map(() => '---').join('|')}|${modes.length === 2 ? '---|' : ''}`)
for (const [name, format] of rows) {
  const cells = modes.map(mode => format(results[mode]))
  const ratio =
    modes.length === 2 && Number(cells[1]) > 0
      ? ` ${(Number(cells[0]) / Number(cells[1])).toFixed(2)} |`
      : modes.length === 2
        ? ' - |'
        : ''
  console.log(`| ${name} | ${cells.join(' | ')} |${ratio}`)
}
for (const mode of modes)
  if (results[mode].problems.length)
    console.log(`${mode} problems: ${results[mode].problems.join('; ')}`)
const action = results.action
if (action) {
  console.log(
    `\ntargets: makespan ≤ 1.5× critical path: ${action.makespanS <= 1.5 * criticalPathS ? 'met' : 'MISSED'}; ` +
      `p95 delay ≤ 5 s: ${action.p95DelayS <= 5 ? 'met' : 'MISSED'}; ` +
      `no 429 run longer than one Retry-After (1 s): ${action.longest429RunS <= 1 ? 'met' : 'MISSED'}` +
      (results.baseline
        ? `; ahead of baseline on makespan and delay: ${action.makespanS < results.baseline.makespanS && action.meanDelayS < results.baseline.meanDelayS ? 'yes' : 'NO'}`
        : '')
  )
}
