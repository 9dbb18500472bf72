import { UserError } from '../common/errors.js'
import { RECOMPILE_PLAN } from '../common/error-messages.js'
import { inline } from '../common/escape.js'

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

/** A `secret://` reference a job resolves at run time (orun 2.5x); never a value. */
export interface PlanSecretRef {
  asEnv: string
  ref: string
  optional?: boolean
  [field: string]: unknown
}

export interface PlanJob {
  id: string
  /** orun 2.71+: the job's dense 0-based position in the plan. */
  index?: number
  name?: string
  /** orun 2.5x: the job's display name, e.g. `Deploy`. */
  displayName?: string
  /** orun 2.5x: `component · env · Display name`, what GitHub checks are named after. */
  checkName?: string
  component?: string
  environment?: string
  /** orun 2.5x: the runner label the intent asks for. */
  runsOn?: string
  dependsOn?: string[]
  secretRefs?: PlanSecretRef[]
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
  /** The job's check name: `name: ${{ matrix.name }}` names the GitHub check like orun's own workflows. */
  name: string
  /** The runner label the plan asks for, or '' (`runs-on: ${{ matrix.runs-on || 'ubuntu-latest' }}`). */
  'runs-on': string
  /** orun's own `index` of the job (orun 2.71+), as in orun's `--github-output` matrix; absent before. */
  index?: number
}

/** GitHub refuses a matrix of more than 256 jobs. */
export const MAX_MATRIX_JOBS = 256

export function planIdFromChecksum(checksum: string): string {
  return checksum.replace(/^sha256-/, '').slice(0, 12)
}

/**
 * What orun writes: `sha256-` and the hex digest. The plan id made from it ends
 * up in file names and run ids, so nothing else (`/`, `..`, spaces) may pass.
 */
const CHECKSUM = /^(sha256-)?[0-9a-fA-F]{12,128}$/

/**
 * Larger plan files are refused before they are parsed: JSON.parse alone would
 * take seconds and the memory of several copies. orun's plans are a few KiB per job.
 */
export const MAX_PLAN_CHARS = 64 * 1024 * 1024

export interface ParseOptions {
  /** Refuse names orun would print as (part of) a workflow command: see checkOrunSafeNames. */
  orunSafeNames?: boolean
}

/**
 * Text that would make a log line a workflow command: characters that end a
 * line or hide text, and the legacy command marker `##[` (a command anywhere in
 * a line). The action shows such text escaped, but orun prints names in its own
 * log lines (`orun: job <id>`, `::stop-commands::orun-stop-<id>`,
 * `::error::<checkName> › …`), which reach the runner unchanged.
 */
// eslint-disable-next-line no-control-regex -- control characters are what this finds
const COMMAND_MAKING = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|##\[/

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const recompile = RECOMPILE_PLAN

/** Parses and validates a plan file; every problem is a one-line UserError naming the fix. */
export function parsePlan(text: string, source: string, options: ParseOptions = {}): Plan {
  // Sizes first: the cost of everything below grows with them.
  if (text.length > MAX_PLAN_CHARS) {
    throw new UserError(
      `Plan file ${source} is ${Math.round(text.length / 1024 / 1024)} MiB, more than the ${MAX_PLAN_CHARS / 1024 / 1024} MiB this action reads. ` +
        "Compile smaller plans, scoped with 'environments' or 'components', or with 'changed: true'."
    )
  }
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
  if (!CHECKSUM.test(metadata.checksum)) {
    throw new UserError(
      `Plan file ${source} has metadata.checksum ${inline(metadata.checksum.slice(0, 80))}, which is not a sha256 digest ` +
        `('sha256-' and at least 12 hex digits, as orun writes it); the plan id is made from it. ${recompile}`
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
    for (const field of ['component', 'environment'] as const) {
      if (job[field] !== undefined && typeof job[field] !== 'string') {
        throw new UserError(
          `Plan file ${source}: job ${inline(job.id)} has a ${field} that is not a string. ${recompile}`
        )
      }
    }
    if (job.index !== undefined && !(Number.isSafeInteger(job.index) && Number(job.index) >= 0)) {
      throw new UserError(
        `Plan file ${source}: job ${inline(job.id)} has an index that is not a whole number of 0 or more, as orun writes it. ${recompile}`
      )
    }
    if (options.orunSafeNames) checkOrunSafeNames([job as PlanJob], source)
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

/**
 * Refuses jobs whose id, component, environment or checkName holds a line
 * break, a control character or `##[` (COMMAND_MAKING): the plan action (so
 * such a plan never reaches a matrix) and the run action (before it claims,
 * for the jobs it would hand to orun) call it. Everything else (`::`,
 * backticks, HTML, markdown) is accepted and shown literally.
 */
export function checkOrunSafeNames(jobs: readonly PlanJob[], source: string): void {
  for (const job of jobs) {
    for (const field of ['id', 'component', 'environment', 'checkName'] as const) {
      const value = job[field]
      if (typeof value === 'string' && COMMAND_MAKING.test(value)) {
        throw new UserError(
          `Plan file ${source}: job ${inline(job.id)} has a ${field} with a line break, a control character or "##[". ` +
            'orun prints it in its own log lines, where it would split the line or make it a workflow command: rename it in intent.yaml and re-compile the plan.'
        )
      }
    }
  }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every(item => typeof item === 'string')
}

/**
 * Kahn's algorithm, taking the ready job listed first in the file each time
 * (a heap of file positions: O((jobs + edges) log jobs), where sorting the
 * ready list on every step made a 50,000-job plan take minutes); a leftover
 * means a cycle, which is named.
 */
function topologicalOrder(
  jobs: PlanJob[],
  byId: ReadonlyMap<string, PlanJob>,
  source: string
): PlanJob[] {
  const position = new Map(jobs.map((job, index) => [job.id, index]))
  // Per job (by file position): distinct dependencies not yet ordered, and direct dependents.
  const waitingOn = new Array<number>(jobs.length).fill(0)
  const dependents: number[][] = jobs.map(() => [])
  jobs.forEach((job, index) => {
    const deps = new Set(job.dependsOn ?? [])
    waitingOn[index] = deps.size
    for (const dep of deps) dependents[position.get(dep)!].push(index)
  })
  const ready = new MinHeap()
  waitingOn.forEach((count, index) => count === 0 && ready.push(index))
  const order: PlanJob[] = []
  while (ready.size) {
    const index = ready.pop()
    order.push(jobs[index])
    for (const dependent of dependents[index])
      if (--waitingOn[dependent] === 0) ready.push(dependent)
  }
  if (order.length < jobs.length) {
    const cycle = findCycle(
      jobs.filter((_, index) => waitingOn[index] > 0),
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

/** A binary min-heap of non-negative integers (file positions, ranks). */
export class MinHeap {
  private readonly items: number[] = []

  get size(): number {
    return this.items.length
  }

  /** The smallest value, left in the heap (undefined when empty). */
  peek(): number | undefined {
    return this.items[0]
  }

  push(value: number): void {
    const items = this.items
    let at = items.push(value) - 1
    while (at > 0) {
      const parent = (at - 1) >> 1
      if (items[parent] <= value) break
      items[at] = items[parent]
      at = parent
    }
    items[at] = value
  }

  pop(): number {
    const items = this.items
    const top = items[0]
    const last = items.pop()!
    if (items.length) {
      let at = 0
      for (;;) {
        const left = 2 * at + 1
        if (left >= items.length) break
        const child = left + 1 < items.length && items[left + 1] < items[left] ? left + 1 : left
        if (items[child] >= last) break
        items[at] = items[child]
        at = child
      }
      items[at] = last
    }
    return top
  }
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
    component: job.component ?? '',
    name: checkNameOf(job),
    'runs-on': nonEmptyString(job.runsOn) ?? '',
    ...(typeof job.index === 'number' ? { index: job.index } : {})
  }))
}

const nonEmptyString = (value: unknown): string | undefined =>
  typeof value === 'string' && value.trim() ? value : undefined

/**
 * The name GitHub shows for the job's check: orun's own `checkName` when the plan has one
 * (orun 2.5x), else `component · env · name` built from the fields of an older plan, else the
 * id. Never taken apart from the id: its format changed (`comp@env.job`, then `comp.env.job`).
 */
export function checkNameOf(job: PlanJob): string {
  const checkName = nonEmptyString(job.checkName)
  if (checkName) return checkName
  const parts = [job.component, job.environment, job.displayName ?? job.name].map(nonEmptyString)
  return parts.every(Boolean) ? parts.join(' · ') : job.id
}

/** A job's secret references, with the environment variable orun resolves each from locally. */
export interface SecretNeed {
  asEnv: string
  ref: string
  optional: boolean
  /** `ORUN_SECRET_<KEY>`, or undefined when the ref has no key orun could parse. */
  overrideEnv?: string
}

/**
 * `secretRefs` of a job. In local mode orun resolves a ref only from `ORUN_SECRET_<KEY>`, KEY
 * being the ref's last path segment without its `@<version>` pin (orun cmd/orun/run_secrets.go,
 * internal/scoperef): `secret://stage/db/DATABASE_URL@3` → `ORUN_SECRET_DATABASE_URL`.
 */
export function secretNeedsOf(job: PlanJob): SecretNeed[] {
  const refs = Array.isArray(job.secretRefs) ? job.secretRefs : []
  return refs
    .filter(ref => isObject(ref) && typeof ref.asEnv === 'string' && typeof ref.ref === 'string')
    .map(ref => {
      const key = secretKeyOf(ref.ref)
      return {
        asEnv: ref.asEnv,
        ref: ref.ref,
        optional: ref.optional === true,
        overrideEnv: key ? `${SECRET_OVERRIDE_PREFIX}${key}` : undefined
      }
    })
}

/** Where orun's local mode reads a secret reference's value from: ORUN_SECRET_<KEY>. */
export const SECRET_OVERRIDE_PREFIX = 'ORUN_SECRET_'

/** The KEY of a `secret://…/KEY[@version]` reference, when it is one orun accepts. */
export function secretKeyOf(ref: string): string | undefined {
  const match = /^secret:\/\/(?:.*\/)?([^/@]+)(?:@[1-9][0-9]{0,8})?$/.exec(ref)
  return match && /^[A-Za-z][A-Za-z0-9._-]{0,127}$/.test(match[1]) ? match[1] : undefined
}

const depthsOfPlan = new WeakMap<Plan, Map<string, number>>()

/** Length of the longest dependency chain above a job (0 for a root; 0 for a job not in the plan). */
export function depthOf(plan: Plan, jobId: string): number {
  let depths = depthsOfPlan.get(plan)
  if (!depths) {
    // One pass in topological order, no recursion: a chain of thousands of jobs fits no call stack.
    depths = new Map()
    for (const job of plan.order) {
      let depth = 0
      for (const dep of job.dependsOn ?? []) depth = Math.max(depth, depths.get(dep)! + 1)
      depths.set(job.id, depth)
    }
    depthsOfPlan.set(plan, depths)
  }
  return depths.get(jobId) ?? 0
}

/**
 * Jobs on the longest path from each job to the end of the DAG, itself included (1 for a job
 * nothing depends on): how pool workers rank runnable jobs, and what `auto` simulates them by.
 */
export function remainingPath(plan: Plan): Map<string, number> {
  const length = new Map<string, number>()
  for (let index = plan.order.length - 1; index >= 0; index--) {
    const id = plan.order[index].id
    let below = 0
    for (const dependent of plan.dependents.get(id) ?? [])
      below = Math.max(below, length.get(dependent) ?? 0)
    length.set(id, 1 + below)
  }
  return length
}

/** Every job that must succeed before this one may start. */
export function ancestorsOf(plan: Plan, jobId: string): Set<string> {
  const found = new Set<string>()
  const stack = [...(plan.byId.get(jobId)?.dependsOn ?? [])]
  while (stack.length) {
    const id = stack.pop()!
    if (found.has(id)) continue
    found.add(id)
    for (const dep of plan.byId.get(id)?.dependsOn ?? []) if (!found.has(dep)) stack.push(dep)
  }
  return found
}

/**
 * The plan orun runs on a matrix runner: only the claimed job, with no
 * dependsOn, and `execution.concurrency: 1`. The backend's claim already
 * proved the dependencies succeeded, while orun's state (in memory, empty on
 * a fresh runner) would otherwise refuse the job, or, on its concurrent path
 * (concurrency > 1), skip it and exit 0. Concurrency 1 also keeps an orun
 * without `--isolation` in the checked-out tree (it copies the tree per job
 * only when concurrency > 1). Every other field is kept.
 */
export function singleJobPlan(plan: Plan, jobId: string): PlanFile {
  const job = plan.byId.get(jobId)
  if (!job) throw new Error(`job ${jobId} is not in plan ${plan.id}`)
  const execution = isObject(plan.file.execution) ? plan.file.execution : {}
  return {
    ...plan.file,
    execution: { ...execution, concurrency: 1 },
    jobs: [{ ...job, dependsOn: [] }]
  }
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
