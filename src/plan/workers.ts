import { UserError } from '../common/errors.js'
import { parseWholeNumber } from '../common/inputs.js'
import { MAX_MATRIX_JOBS, MinHeap, depthOf, remainingPath, type Plan } from './model.js'

/**
 * How many pool workers a plan gets (the plan action's `workers` input).
 *
 * A pool of K workers finishes no sooner than the critical path and no sooner
 * than total work / K. Workers beyond what keeps the critical path buy nothing:
 * they idle, billed, and their polling eats the repository's shared rate limit
 * (measured: 8 workers on the 40-job wide-deep plan reached 1.07 × the critical
 * path; 16 reached 1.26 with twice the runner time). Job durations are not in
 * the plan, so every job stands in as one unit of time: `auto` starts from
 * ceil(jobs / levels) (the work spread evenly over the dependency levels) and
 * takes the fewest workers from there for which a simulated schedule of
 * unit-time jobs (`unitSchedule`: workers take runnable jobs in the order pool
 * workers rank them) ends in as many steps as the plan has levels. Levels are
 * uneven, so the even spread may leave a level's last job waiting for a free
 * worker and add a step (wide-deep: 7 would need 7 steps; 8 keep 6). The
 * search stops at the widest level (that many workers always keep the
 * critical path), at the job count and at GitHub's 256-entry matrix limit.
 */
export interface WorkerChoice {
  count: number
  /** One sentence for the summary: where the number comes from. */
  reason: string
}

const SIMULATED = 'in a simulated schedule of equally long jobs (the plan has no durations)'

export function chooseWorkers(plan: Plan, requested: number | 'auto'): WorkerChoice {
  const jobs = plan.order.length
  if (!jobs) return { count: 0, reason: 'the plan has no jobs, so no workers are needed' }
  if (requested !== 'auto') {
    const count = Math.min(requested, jobs)
    return {
      count,
      reason:
        count < requested
          ? `'workers' asked for ${requested}, but the plan has only ${jobs} job(s): more workers than jobs would only idle`
          : `set by the 'workers' input`
    }
  }
  const { levels, widest } = levelsOf(plan)
  const even = Math.ceil(jobs / levels)
  const head = `auto: ${jobs} job(s) over ${levels} dependency level(s), the widest ${widest} job(s): `
  const more = '; more would mostly wait, billed, and poll the shared rate limit'
  if (even > MAX_MATRIX_JOBS) {
    return {
      count: MAX_MATRIX_JOBS,
      reason:
        head +
        `ceil(${jobs} / ${levels}) = ${even} worker(s) would be busy on average, capped at ${MAX_MATRIX_JOBS} (GitHub's largest matrix)`
    }
  }
  const steps = unitSchedule(plan)
  const evenSteps = steps(even)
  if (evenSteps <= levels) {
    return {
      count: even,
      reason:
        head +
        `ceil(${jobs} / ${levels}) = ${even} worker(s) keep the critical path of ${levels} level(s) ${SIMULATED}${more}`
    }
  }
  // widest ≥ jobs / levels, so widest > even here.
  const most = Math.min(widest, MAX_MATRIX_JOBS)
  const slow = `ceil(${jobs} / ${levels}) = ${even} would need ${evenSteps} steps`
  for (let count = even + 1; ; count++) {
    // As many workers as the widest level always keep the critical path (each step runs one
    // level), so only a count capped below it needs its full simulation, for the sentence.
    const taken = count === most && most < widest ? steps(count) : steps(count, levels)
    if (taken <= levels) {
      const between =
        count - 1 === even
          ? ''
          : `, and ${even + 1}${count - 2 > even ? ` to ${count - 1}` : ''} more than ${levels}`
      return {
        count,
        reason: `${head}${count} keep the critical path of ${levels} level(s), while ${slow}${between}, ${SIMULATED}${more}`
      }
    }
    if (count >= most) {
      return {
        count,
        reason: `${head}${slow} and ${count}, GitHub's largest matrix, still ${taken}, ${SIMULATED}: capped at ${count}`
      }
    }
  }
}

/**
 * Pool workers simulated on the plan with every job taking one step (job durations are not in
 * the plan; one step stands in for each). At every step all workers are free, and they take the
 * runnable jobs best first in the order pool workers rank them (src/run/pool.ts `ranking`: the
 * longest remaining path, then the plan's order); a job's dependents become runnable at the next
 * step. Returns a function of the worker count giving the steps until every job has ended; given
 * a limit, it stops as soon as a runnable job left waiting cannot end within it and returns a
 * count above the limit. Each simulation is O((jobs + edges) log jobs).
 */
export function unitSchedule(plan: Plan): (workers: number, limit?: number) => number {
  const jobs = plan.order
  const remaining = remainingPath(plan)
  // Rank r: the r-th best job (a heap of ranks hands out the best runnable job first).
  const byRank = jobs
    .map((_, index) => index)
    .sort((a, b) => remaining.get(jobs[b].id)! - remaining.get(jobs[a].id)! || a - b)
  const rankOf = new Map(byRank.map((index, rank) => [jobs[index].id, rank]))
  const pathOf = byRank.map(index => remaining.get(jobs[index].id)!)
  const dependents: number[][] = byRank.map(() => [])
  const waitingOn = byRank.map((index, rank) => {
    const deps = new Set(jobs[index].dependsOn ?? [])
    for (const dep of deps) dependents[rankOf.get(dep)!].push(rank)
    return deps.size
  })
  return (workers, limit = Infinity) => {
    const waiting = waitingOn.slice()
    const ready = new MinHeap()
    waiting.forEach((count, rank) => {
      if (count === 0) ready.push(rank)
    })
    const started: number[] = []
    let step = 0
    while (ready.size) {
      step++
      started.length = 0
      while (started.length < workers && ready.size) started.push(ready.pop())
      const next = ready.peek()
      if (next !== undefined && step + pathOf[next] > limit) return step + pathOf[next]
      for (const rank of started)
        for (const dependent of dependents[rank])
          if (--waiting[dependent] === 0) ready.push(dependent)
    }
    return step
  }
}

/** Dependency levels (longest chain, in jobs) and the most jobs any one level holds. */
export function levelsOf(plan: Plan): { levels: number; widest: number } {
  const perLevel = new Map<number, number>()
  for (const job of plan.order) {
    const depth = depthOf(plan, job.id)
    perLevel.set(depth, (perLevel.get(depth) ?? 0) + 1)
  }
  return {
    levels: perLevel.size ? Math.max(...perLevel.keys()) + 1 : 0,
    widest: Math.max(0, ...perLevel.values())
  }
}

/** The `workers` input: a whole number from 1 to 256, or auto. */
export function parseWorkersInput(raw: string): number | 'auto' {
  const text = raw.trim()
  if (!text || text === 'auto') return 'auto'
  const count = parseWholeNumber(text)
  if (count !== undefined && count >= 1 && count <= MAX_MATRIX_JOBS) return count
  throw new UserError(
    `Input 'workers' must be auto or a whole number from 1 to ${MAX_MATRIX_JOBS} (one matrix entry per worker), got '${raw.trim()}'.`
  )
}

/** The `workers` output: [1, 2, ..., K], for matrix: worker: ${{ fromJson(needs.plan.outputs.workers) }}. */
export function workerIndexes(count: number): number[] {
  return Array.from({ length: count }, (_, index) => index + 1)
}

export function renderWorkersSummary(choice: WorkerChoice): string {
  return `\nWorker pool (run action with \`worker: \${{ matrix.worker }}\`): **${choice.count}** worker(s); ${choice.reason}.\n`
}
