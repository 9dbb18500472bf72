import { UserError } from '../common/errors.js'
import { RECOMPILE_PLAN } from '../common/error-messages.js'

/**
 * The orun plan file (see orun-cli.md) and the DAG built from it. Only the
 * fields the action reads are typed; every other field is kept as is, so a
 * copied or derived plan never loses what orun put there.
 */
export interface PlanStep {
  id?: string
  name?: string
  use?: string
  run?: string
  with?: Record<string, unknown>
  [field: string]: unknown
}

export interface PlanJob {
  id: string
  name?: string
  component?: string
  environment?: string
  dependsOn?: string[]
  steps?: PlanStep[]
  [field: string]: unknown
}

export interface PlanFile {
  metadata: { name?: string; checksum: string; [field: string]: unknown }
  jobs: PlanJob[]
  [field: string]: unknown
}

export interface Plan {
  file: PlanFile
  /** metadata.checksum without `sha256-`, first 12 characters: what `orun run` and the backend use. */
  id: string
  /** Jobs in a topological order (dependencies first), stable with respect to the file's order. */
  order: PlanJob[]
  byId: ReadonlyMap<string, PlanJob>
  /** Direct dependents of each job. */
  dependents: ReadonlyMap<string, string[]>
}

export interface MatrixEntry {
  job: string
  env: string
  component: string
}

/** GitHub refuses a matrix of more than 256 jobs. */
export const MAX_MATRIX_JOBS = 256

export function planIdFromChecksum(checksum: string): string {
  return checksum.replace(/^sha256-/, '').slice(0, 12)
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const recompile = RECOMPILE_PLAN

/** Parses and validates a plan file; every problem is a one-line UserError naming the fix. */
export function parsePlan(text: string, source: string): Plan {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new UserError(
      `Plan file ${source} is not valid JSON (${(error as Error).message}). ${recompile}`
    )
  }
  if (!isObject(data)) throw new UserError(`Plan file ${source} is not a JSON object. ${recompile}`)
  const metadata = data.metadata
  if (!isObject(metadata) || typeof metadata.checksum !== 'string' || !metadata.checksum.trim()) {
    throw new UserError(
      `Plan file ${source} has no metadata.checksum, so it has no plan id: it was not written by \`orun plan\` or was edited. ${recompile}`
    )
  }
  if (!Array.isArray(data.jobs)) {
    throw new UserError(`Plan file ${source} has no "jobs" array. ${recompile}`)
  }
  const jobs = data.jobs as unknown[]
  const byId = new Map<string, PlanJob>()
  jobs.forEach((job, index) => {
    if (!isObject(job) || typeof job.id !== 'string' || !job.id.trim()) {
      throw new UserError(`Plan file ${source}: job #${index + 1} has no id. ${recompile}`)
    }
    if (byId.has(job.id)) {
      throw new UserError(
        `Plan file ${source} has two jobs with the id "${job.id}"; job ids must be unique. ${recompile}`
      )
    }
    if (job.dependsOn !== undefined && !isStringArray(job.dependsOn)) {
      throw new UserError(
        `Plan file ${source}: job "${job.id}" has a dependsOn that is not a list of job ids. ${recompile}`
      )
    }
    byId.set(job.id, job as PlanJob)
  })
  for (const job of byId.values()) {
    for (const dep of job.dependsOn ?? []) {
      if (!byId.has(dep)) {
        throw new UserError(
          `Plan file ${source}: job "${job.id}" depends on "${dep}", which is not in the plan. ` +
            'Fix the dependency in intent.yaml, or widen the plan (environments, components) so it includes that job.'
        )
      }
    }
  }
  const order = topologicalOrder([...byId.values()], byId, source)
  const dependents = new Map<string, string[]>([...byId.keys()].map(id => [id, []]))
  for (const job of order) for (const dep of job.dependsOn ?? []) dependents.get(dep)!.push(job.id)
  return {
    file: data as PlanFile,
    id: planIdFromChecksum(metadata.checksum),
    order,
    byId,
    dependents
  }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every(item => typeof item === 'string')
}

/** Kahn's algorithm, taking ready jobs in file order; a leftover means a cycle, which is named. */
function topologicalOrder(
  jobs: PlanJob[],
  byId: ReadonlyMap<string, PlanJob>,
  source: string
): PlanJob[] {
  const position = new Map(jobs.map((job, index) => [job.id, index]))
  const waitingOn = new Map(jobs.map(job => [job.id, new Set(job.dependsOn ?? [])]))
  const dependents = new Map<string, string[]>(jobs.map(job => [job.id, []]))
  for (const job of jobs)
    for (const dep of new Set(job.dependsOn ?? [])) dependents.get(dep)!.push(job.id)
  const ready = jobs.filter(job => waitingOn.get(job.id)!.size === 0).map(job => job.id)
  const order: PlanJob[] = []
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
  if (order.length < jobs.length) {
    const cycle = findCycle(
      jobs.filter(job => waitingOn.get(job.id)!.size > 0),
      byId,
      position
    )
    throw new UserError(
      `Plan file ${source} has a dependency cycle: ${cycle.join(' → ')} (each job waits for the one before it). ` +
        'Break the cycle in intent.yaml and re-compile the plan.'
    )
  }
  return order
}

/**
 * Walks dependsOn edges from a job stuck in the cycle until a job repeats; returns it in run
 * order, starting at the cycle's job listed first in the file.
 */
function findCycle(
  stuck: PlanJob[],
  byId: ReadonlyMap<string, PlanJob>,
  position: ReadonlyMap<string, number>
): string[] {
  const stuckIds = new Set(stuck.map(job => job.id))
  const path: string[] = []
  const seenAt = new Map<string, number>()
  let current = stuck[0].id
  while (!seenAt.has(current)) {
    seenAt.set(current, path.length)
    path.push(current)
    current = (byId.get(current)!.dependsOn ?? []).find(dep => stuckIds.has(dep))!
  }
  // path follows "depends on" edges; reversed it is the order the jobs would have to run in.
  const loop = path.slice(seenAt.get(current)!).reverse()
  // Otherwise the message would start wherever the walk happened to enter the cycle.
  const first = loop.reduce((a, b) => (position.get(a)! <= position.get(b)! ? a : b))
  const start = loop.indexOf(first)
  const rotated = [...loop.slice(start), ...loop.slice(0, start)]
  return [...rotated, rotated[0]]
}

export function matrixEntries(plan: Plan): MatrixEntry[] {
  return plan.order.map(job => ({
    job: job.id,
    env: job.environment ?? '',
    component: job.component ?? ''
  }))
}

/** Length of the longest dependency chain above a job (0 for a root). */
export function depthOf(plan: Plan, jobId: string, memo = new Map<string, number>()): number {
  const known = memo.get(jobId)
  if (known !== undefined) return known
  const deps = plan.byId.get(jobId)?.dependsOn ?? []
  const depth = deps.length ? 1 + Math.max(...deps.map(dep => depthOf(plan, dep, memo))) : 0
  memo.set(jobId, depth)
  return depth
}

/** Every job that must succeed before this one may start. */
export function ancestorsOf(plan: Plan, jobId: string): Set<string> {
  const found = new Set<string>()
  const stack = [...(plan.byId.get(jobId)?.dependsOn ?? [])]
  while (stack.length) {
    const id = stack.pop()!
    if (found.has(id)) continue
    found.add(id)
    stack.push(...(plan.byId.get(id)?.dependsOn ?? []))
  }
  return found
}

/**
 * The plan orun runs on a matrix runner: only the claimed job, with no
 * dependsOn. The backend's claim already proved the dependencies succeeded,
 * and a fresh runner's local state is empty, so orun's local check would
 * otherwise refuse to start. Every other field is kept.
 */
export function singleJobPlan(plan: Plan, jobId: string): PlanFile {
  const job = plan.byId.get(jobId)
  if (!job) throw new Error(`job ${jobId} is not in plan ${plan.id}`)
  return { ...plan.file, jobs: [{ ...job, dependsOn: [] }] }
}

/** Jobs of the given environments/components (empty list = no filter), in topological order. */
export function selectJobs(
  plan: Plan,
  environments: readonly string[],
  components: readonly string[]
): PlanJob[] {
  const known = (field: 'environment' | 'component', wanted: readonly string[], input: string) => {
    const present = new Set(plan.order.map(job => job[field] ?? ''))
    const unknown = wanted.filter(value => !present.has(value))
    if (unknown.length) {
      throw new UserError(
        `Input '${input}' names ${unknown.map(v => `'${v}'`).join(', ')}, which the plan does not have. ` +
          `The plan has: ${[...present].sort().join(', ') || 'none'}.`
      )
    }
  }
  known('environment', environments, 'environments')
  known('component', components, 'components')
  return plan.order.filter(
    job =>
      (!environments.length || environments.includes(job.environment ?? '')) &&
      (!components.length || components.includes(job.component ?? ''))
  )
}
