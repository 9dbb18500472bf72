/**
 * `npm run bench:validate`: how long parsing and validating a plan file takes
 * (src/plan/model.ts parsePlan), on generated plans of 1,000 to 50,000 jobs,
 * against two baselines measured in the same run:
 * - the floor: JSON.parse of the same text alone (validation cannot beat it);
 * - the previous algorithm (kept below): Kahn's algorithm re-sorting the ready
 *   list on every step, which took minutes to refuse a 50,000-job plan.
 * Prints the median of several runs and the ratios; the target is parse +
 * validate of a 10,000-job plan under 1 s.
 */
import { performance } from 'node:perf_hooks'
import { depthOf, matrixEntries, parsePlan } from '../src/plan/model.js'
import { checkOutputSizes } from '../src/plan/output-limits.js'

interface Job {
  id: string
  component: string
  environment: string
  dependsOn: string[]
  steps: Array<{ id: string; run: string }>
}

const ENVIRONMENTS = ['dev', 'qa', 'stage', 'prod']

/**
 * A plan shaped like orun's: components in four environments, each job
 * depending on up to three earlier components of its environment and on the
 * same component one environment back. `shape: 'flat'` has no edges at all (every
 * job ready at once: the worst case for the old algorithm); `'chain'` is one
 * dependency chain (the deepest DAG).
 */
function planText(jobs: number, shape: 'dag' | 'flat' | 'chain'): string {
  const perEnv = Math.ceil(jobs / ENVIRONMENTS.length)
  const list: Job[] = []
  for (let index = 0; index < jobs; index++) {
    const env = ENVIRONMENTS[Math.floor(index / perEnv)]
    const k = index % perEnv
    const id = `svc${k}.${env}.smoke`
    let dependsOn: string[] = []
    if (shape === 'dag') {
      dependsOn = [1, 2, 3].filter(d => k - d >= 0).map(d => `svc${k - d}.${env}.smoke`)
      const e = ENVIRONMENTS.indexOf(env)
      if (e > 0) dependsOn.push(`svc${k}.${ENVIRONMENTS[e - 1]}.smoke`)
    } else if (shape === 'chain' && index > 0) {
      dependsOn = [list[index - 1].id]
    }
    list.push({
      id,
      component: `svc${k}`,
      environment: env,
      dependsOn,
      steps: [{ id: 'smoke', run: `echo "svc${k} ${env}"` }]
    })
  }
  return JSON.stringify({
    metadata: { name: 'bench', checksum: `sha256-${'ab'.repeat(32)}` },
    jobs: list
  })
}

/** The previous parse + order, as it was before this benchmark (the baseline). */
function previousParse(text: string): number {
  const data = JSON.parse(text) as { jobs: Job[] }
  const jobs = data.jobs
  const byId = new Map(jobs.map(job => [job.id, job]))
  const position = new Map(jobs.map((job, index) => [job.id, index]))
  const waitingOn = new Map(jobs.map(job => [job.id, new Set(job.dependsOn ?? [])]))
  const dependents = new Map<string, string[]>(jobs.map(job => [job.id, []]))
  for (const job of jobs)
    for (const dep of new Set(job.dependsOn ?? [])) dependents.get(dep)!.push(job.id)
  const ready = jobs.filter(job => waitingOn.get(job.id)!.size === 0).map(job => job.id)
  const order: Job[] = []
  while (ready.length) {
    ready.sort((a, b) => position.get(a)! - position.get(b)!)
    const id = ready.shift()!
    order.push(byId.get(id)!)
    for (const dependent of dependents.get(id)!) {
      const pending = waitingOn.get(dependent)!
      pending.delete(id)
      if (pending.size === 0) ready.push(dependent)
    }
  }
  return order.length
}

/** Median wall time of `runs` runs, after one untimed run (JIT warm-up) unless `warm` is false. */
function medianMs(runs: number, work: () => unknown, warm = true): number {
  if (warm) work()
  const times: number[] = []
  for (let run = 0; run < runs; run++) {
    const started = performance.now()
    work()
    times.push(performance.now() - started)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]
}

const ms = (value: number) => value.toFixed(value < 10 ? 2 : 0)
// The old algorithm is quadratic: beyond this it takes minutes (BENCH_PREVIOUS_MAX raises it).
const previousMax = Number(process.env.BENCH_PREVIOUS_MAX ?? 10_000)

console.log(
  '| plan | text MiB | JSON.parse ms (floor) | parsePlan ms | parsePlan / floor | previous ms | previous / parsePlan |'
)
console.log('|---|---|---|---|---|---|---|')
let tenThousandMs = 0
for (const [jobs, shape] of [
  [1_000, 'dag'],
  [10_000, 'dag'],
  [10_000, 'flat'],
  [10_000, 'chain'],
  [50_000, 'dag'],
  [50_000, 'flat']
] as const) {
  const text = planText(jobs, shape)
  const runs = jobs >= 50_000 ? 3 : 5
  const floor = medianMs(runs, () => JSON.parse(text))
  const current = medianMs(runs, () => {
    const plan = parsePlan(text, 'bench.json')
    depthOf(plan, plan.order[plan.order.length - 1].id)
  })
  if (jobs === 10_000) tenThousandMs = Math.max(tenThousandMs, current)
  const previous = jobs <= previousMax ? medianMs(1, () => previousParse(text), false) : undefined
  console.log(
    `| ${jobs} jobs, ${shape} | ${(text.length / 1024 / 1024).toFixed(1)} | ${ms(floor)} | ${ms(current)} | ${(current / floor).toFixed(2)} | ` +
      `${previous === undefined ? 'skipped' : ms(previous)} | ${previous === undefined ? '-' : (previous / current).toFixed(1)} |`
  )
}

// What the plan action does with a 50,000-job plan: parse and validate it (names checked for
// orun too), then refuse it, its outputs being over GitHub's 1 MB per job.
const huge = planText(50_000, 'flat')
const floor = medianMs(3, () => JSON.parse(huge))
const refuse = medianMs(3, () => {
  const plan = parsePlan(huge, 'bench.json', { orunSafeNames: true })
  const jobs = matrixEntries(plan)
  try {
    checkOutputSizes({ jobs: JSON.stringify(jobs), matrix: JSON.stringify({ include: jobs }) })
  } catch {
    // the refusal is the point
  }
})
console.log(
  `\nrefusing a 50000-job plan (plan action: parse, validate, outputs over GitHub's limit): ${ms(refuse)} ms, ${(refuse / floor).toFixed(2)}× JSON.parse alone`
)
console.log(
  `target: parse + validate a 10000-job plan under 1 s: ${tenThousandMs < 1000 ? 'met' : 'MISSED'} (slowest shape ${ms(tenThousandMs)} ms)`
)
