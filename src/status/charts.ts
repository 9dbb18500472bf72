import { ganttName, mermaidLines } from '../common/escape.js'
import { OUTCOMES, type JobView, type Outcome, type RunView } from './outcome.js'

/**
 * The two pictures of the status summary, as mermaid: the DAG with every node
 * styled by its outcome, and a gantt timeline of when each job ran. GitHub's
 * renderer gives up on very large charts, so big plans are drawn one node (and
 * one bar) per environment instead of per job.
 */
export const MAX_CHARTED_JOBS = 200
/** Above this many edges a per-job chart is unreadable (as in the plan summary). */
export const MAX_CHARTED_EDGES = 400

/** Node classes: mermaid class names are identifiers. */
const CLASS: Record<Outcome, string> = {
  success: 'success',
  carried: 'carried',
  skipped: 'skipped',
  failed: 'failed',
  blocked: 'blocked',
  running: 'running',
  'not-run': 'notrun'
}

const CLASS_DEFS = [
  '  classDef success fill:#dafbe1,stroke:#1a7f37,color:#1f2328',
  '  classDef carried fill:#f0fff4,stroke:#1a7f37,stroke-dasharray:2 2,color:#1f2328',
  '  classDef skipped fill:#f6f8fa,stroke:#8c959f,color:#1f2328',
  '  classDef failed fill:#ffebe9,stroke:#cf222e,stroke-width:3px,color:#1f2328',
  '  classDef blocked fill:#fff8c5,stroke:#9a6700,color:#1f2328',
  '  classDef running fill:#ddf4ff,stroke:#0969da,stroke-dasharray:4 3,color:#1f2328',
  '  classDef notrun fill:#f6f8fa,stroke:#8c959f,stroke-dasharray:4 3,color:#57606a'
]

export const OUTCOME_WORDS: Record<Outcome, string> = {
  success: '✓ succeeded',
  carried: '↻ carried over',
  skipped: '– skipped',
  failed: '✗ failed',
  blocked: '⊘ blocked',
  running: '… no result (still running)',
  'not-run': '○ never ran'
}

/** "⊘ blocked by a, b +3", "↻ carried over from attempt 1", "✓ succeeded in 12s". */
export function outcomeText(job: JobView, withDuration = true): string {
  switch (job.outcome) {
    case 'blocked':
      return `${OUTCOME_WORDS.blocked} by ${listSome(job.blockedBy, 2)}`
    case 'carried':
      return `${OUTCOME_WORDS.carried} from ${job.carriedFrom !== undefined ? `attempt ${job.carriedFrom}` : 'an earlier attempt'}`
    case 'success':
    case 'failed':
      if (job.runnerLost) return '✗ runner lost'
      return withDuration && job.durationMs !== undefined
        ? `${OUTCOME_WORDS[job.outcome]} in ${formatDuration(job.durationMs)}`
        : OUTCOME_WORDS[job.outcome]
    default:
      return OUTCOME_WORDS[job.outcome]
  }
}

export function listSome(items: readonly string[], shown: number): string {
  return items.length > shown
    ? `${items.slice(0, shown).join(', ')} +${items.length - shown}`
    : items.join(', ')
}

export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  const seconds = Math.round(ms / 1000)
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return h ? `${h}h ${String(m).padStart(2, '0')}m` : `${m}m ${String(s).padStart(2, '0')}s`
}

function edgeCount(view: RunView): number {
  return view.jobs.reduce((sum, job) => sum + job.deps.length, 0)
}

/** Whether the pictures are drawn per environment rather than per job. */
export function chartsAggregated(view: RunView): boolean {
  return view.jobs.length > MAX_CHARTED_JOBS || edgeCount(view) > MAX_CHARTED_EDGES
}

/** aggregated: per environment even when the jobs could be drawn one by one (a smaller picture). */
export function dagChart(view: RunView, aggregated = chartsAggregated(view)): string[] {
  return aggregated ? environmentDag(view) : jobDag(view)
}

function groupByEnvironment(jobs: readonly JobView[]): Map<string, JobView[]> {
  const groups = new Map<string, JobView[]>()
  for (const job of jobs) groups.set(job.environment, [...(groups.get(job.environment) ?? []), job])
  return groups
}

function jobDag(view: RunView): string[] {
  const nodeId = new Map(view.jobs.map((job, index) => [job.id, `j${index}`]))
  const out = ['flowchart LR']
  for (const [index, [env, jobs]] of [...groupByEnvironment(view.jobs)].entries()) {
    out.push(`  subgraph env${index}[${mermaidLines(env || 'no environment')}]`)
    for (const job of jobs) {
      out.push(
        `    ${nodeId.get(job.id)}[${mermaidLines(job.name, outcomeText(job))}]:::${CLASS[job.outcome]}`
      )
    }
    out.push('  end')
  }
  for (const job of view.jobs)
    for (const dep of job.deps) out.push(`  ${nodeId.get(dep)} --> ${nodeId.get(job.id)}`)
  return [...out, ...CLASS_DEFS]
}

/** The most severe outcome present, which colours an environment's node. */
function worst(jobs: readonly JobView[]): Outcome {
  const present = new Set(jobs.map(job => job.outcome))
  return OUTCOMES.find(outcome => present.has(outcome)) ?? 'not-run'
}

function countsText(jobs: readonly JobView[]): string {
  const counts = new Map<Outcome, number>()
  for (const job of jobs) counts.set(job.outcome, (counts.get(job.outcome) ?? 0) + 1)
  return OUTCOMES.filter(o => counts.has(o))
    .map(o => `${counts.get(o)} ${OUTCOME_WORDS[o].split(' ')[0]}`)
    .join(' · ')
}

function environmentDag(view: RunView): string[] {
  const groups = groupByEnvironment(view.jobs)
  const envNode = new Map([...groups.keys()].map((env, index) => [env, `e${index}`]))
  const out = ['flowchart LR']
  for (const [env, jobs] of groups) {
    out.push(
      `  ${envNode.get(env)}[${mermaidLines(`${env || 'no environment'}: ${jobs.length} jobs`, countsText(jobs))}]:::${CLASS[worst(jobs)]}`
    )
  }
  const edges = new Set<string>()
  for (const job of view.jobs) {
    for (const dep of job.deps) {
      const from = view.byId.get(dep)!.environment
      if (from !== job.environment)
        edges.add(`  ${envNode.get(from)} --> ${envNode.get(job.environment)}`)
    }
  }
  return [
    ...out,
    ...edges,
    `  %% ${view.jobs.length} jobs: too many to draw one by one`,
    ...CLASS_DEFS
  ]
}

/**
 * When each job ran. Red (crit): failed; blue (active): the critical path;
 * grey (done): the rest. Jobs that never started have no bar.
 */
export function timelineChart(
  view: RunView,
  critical: readonly JobView[],
  now: number,
  aggregated = chartsAggregated(view)
): string[] {
  const started = view.jobs.filter(job => job.startedAt !== undefined)
  if (!started.length) return []
  const out = ['gantt', '  dateFormat x', '  axisFormat %H:%M:%S']
  const bar = (name: string, tag: string, start: number, end: number) =>
    `  ${ganttName(name)} :${tag ? `${tag}, ` : ''}${start}, ${Math.max(end, start + 1)}`
  if (aggregated) {
    out.push('  section environments')
    for (const [env, jobs] of groupByEnvironment(started)) {
      const start = Math.min(...jobs.map(job => job.startedAt!))
      const end = Math.max(...jobs.map(job => job.finishedAt ?? now))
      const tag = jobs.some(job => job.outcome === 'failed') ? 'crit' : 'done'
      out.push(bar(`▣ ${env || 'no environment'} (${jobs.length} jobs)`, tag, start, end))
    }
    return out
  }
  const onPath = new Set(critical.map(job => job.id))
  for (const [env, jobs] of groupByEnvironment(started)) {
    out.push(`  section ${ganttName(env || 'no environment')}`)
    for (const job of jobs) {
      const tag =
        job.outcome === 'failed'
          ? 'crit'
          : job.outcome === 'running'
            ? ''
            : onPath.has(job.id)
              ? 'active'
              : 'done'
      // The outcome's symbol first: it also keeps a name from reading as a gantt keyword (section, title).
      const symbol = OUTCOME_WORDS[job.outcome].split(' ')[0]
      out.push(bar(`${symbol} ${job.name}`, tag, job.startedAt!, job.finishedAt ?? now))
    }
  }
  return out
}
