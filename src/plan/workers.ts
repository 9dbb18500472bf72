import { UserError } from '../common/errors.js'
import { parseWholeNumber } from '../common/inputs.js'
import { MAX_MATRIX_JOBS, depthOf, type Plan } from './model.js'

/**
 * How many pool workers a plan gets (the plan action's `workers` input).
 *
 * A pool of K workers finishes no sooner than the critical path and no sooner
 * than total work / K. Workers beyond total work / critical path buy nothing:
 * they idle, billed, and their polling eats the repository's shared rate limit
 * (measured: 8 workers on the 40-job wide-deep plan reached 1.07 × the critical
 * path; 16 reached 1.26 with twice the runner time). Job durations are not in
 * the plan, so jobs stand in for work and dependency levels for the critical
 * path: `auto` = ceil(jobs / levels), capped by the job count and by GitHub's
 * 256-entry matrix limit.
 */
export interface WorkerChoice {
  count: number
  /** One sentence for the summary: where the number comes from. */
  reason: string
}

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
  const shape = levelsOf(plan)
  const even = Math.ceil(jobs / shape.levels)
  const count = Math.min(even, jobs, MAX_MATRIX_JOBS)
  const capped = count < even ? `, capped at ${MAX_MATRIX_JOBS} (GitHub's largest matrix)` : ''
  return {
    count,
    reason:
      `auto: ${jobs} job(s) over ${shape.levels} dependency level(s) (critical path ${shape.levels} job(s), widest level ${shape.widest}) ` +
      `keep ceil(${jobs} / ${shape.levels}) = ${even} worker(s) busy on average${capped}; ` +
      'more would mostly wait, billed, and poll the shared rate limit'
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
