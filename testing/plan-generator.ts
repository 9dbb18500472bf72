import { createHash } from 'node:crypto'

/**
 * Generated orun plans of any size for the pool tests and the benchmark: `jobs`
 * jobs over exactly `depth` levels, every job of level n > 0 depending on one
 * to three jobs of level n - 1 (the first one fixes the depth). Each job runs
 * one step that sleeps its duration, drawn from [minSeconds, maxSeconds] by a
 * seeded generator, so a plan is the same on every run.
 */
export interface GeneratedPlanOptions {
  jobs: number
  depth: number
  minSeconds: number
  maxSeconds: number
  seed?: number
  /** Jobs whose step exits 1 instead of sleeping (by id). */
  failing?: readonly string[]
}

export interface GeneratedJob {
  id: string
  name: string
  component: string
  environment: string
  composition: string
  dependsOn: string[]
  steps: Array<{ id: string; name: string; run: string }>
}

export interface GeneratedPlan {
  apiVersion: string
  kind: string
  metadata: { name: string; checksum: string }
  jobs: GeneratedJob[]
}

/** Job id of the i-th generated job (orun 2.54's `component.environment.job` shape). */
export const generatedJobId = (index: number) => `svc-${String(index).padStart(4, '0')}.dev.build`

export function generatePlan(options: GeneratedPlanOptions): {
  plan: GeneratedPlan
  /** Seconds each job sleeps, by id. */
  seconds: Map<string, number>
} {
  let state = (options.seed ?? 7) >>> 0
  // mulberry32: small, seeded, good enough to scatter durations and edges.
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const failing = new Set(options.failing ?? [])
  const levels: string[][] = Array.from({ length: options.depth }, () => [])
  const seconds = new Map<string, number>()
  const jobs: GeneratedJob[] = []
  for (let index = 0; index < options.jobs; index++) {
    const level = Math.min(options.depth - 1, Math.floor((index * options.depth) / options.jobs))
    const id = generatedJobId(index)
    const above = level ? levels[level - 1] : []
    const deps = new Set<string>()
    if (above.length) {
      deps.add(above[Math.floor(random() * above.length)])
      const extra = Math.floor(random() * 3)
      for (let k = 0; k < extra; k++) deps.add(above[Math.floor(random() * above.length)])
    }
    const duration =
      Math.round((options.minSeconds + random() * (options.maxSeconds - options.minSeconds)) * 10) /
      10
    seconds.set(id, duration)
    levels[level].push(id)
    const work = failing.has(id)
      ? `echo "${id} fails" && exit 1`
      : `echo "${id} start" && sleep ${duration} && echo "${id} done"`
    jobs.push({
      id,
      name: 'build',
      component: `svc-${String(index).padStart(4, '0')}`,
      environment: 'dev',
      composition: 'generated',
      dependsOn: [...deps],
      steps: [{ id: 'build', name: 'build', run: work }]
    })
  }
  const checksum = createHash('sha256').update(JSON.stringify(jobs)).digest('hex')
  return {
    plan: {
      apiVersion: 'orun.io/v1',
      kind: 'Plan',
      metadata: { name: `generated-${options.jobs}`, checksum: `sha256-${checksum}` },
      jobs
    },
    seconds
  }
}
