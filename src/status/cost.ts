import { formatDuration } from './charts.js'
import type { GitHubJob } from './links.js'
import type { RunView } from './outcome.js'

/**
 * What the run cost: the runner time GitHub bills (each job from its start to its end, as
 * GitHub's jobs API reports them, and rounded up to whole minutes per job as GitHub bills)
 * against the time the plan's jobs ran, and what the other mode would have cost, estimated
 * from this run's own job durations:
 *
 * - matrix (one runner per job): every runner starts with the run and holds until its job
 *   ends, so runner `j` lasts about its earliest finish (its duration plus the latest
 *   earliest finish of its dependencies) plus the runner's own start-up and wind-down;
 * - pool (`workers: auto`): K = ceil(jobs / dependency levels) workers for about
 *   max(critical path, job time / K), plus the same start-up and wind-down each.
 *
 * Start-up and wind-down per runner is measured here: the median over the GitHub jobs that
 * ran the plan's jobs of their time less the time from the run's first job start to the end
 * of their last job.
 */
export interface RunCost {
  mode: 'matrix' | 'pool'
  /** GitHub jobs that ran (or waited for) one of the plan's jobs, with start and end times. */
  runners: number
  runnerMs?: number
  billedMinutes?: number
  jobMs: number
  /** Per runner, outside the plan's jobs (median); undefined without GitHub's times. */
  overheadMs?: number
  other: { mode: 'matrix' | 'pool'; runners: number; runnerMs: number; billedMinutes: number }
}

export function estimateCost(
  view: RunView,
  links: ReadonlyMap<string, GitHubJob>
): RunCost | undefined {
  const ran = view.jobs.filter(job => job.durationMs !== undefined && job.outcome !== 'carried')
  if (!ran.length) return undefined
  const jobMs = ran.reduce((sum, job) => sum + job.durationMs!, 0)
  const firstStart = Math.min(...ran.map(job => job.startedAt ?? Infinity))
  const timed = new Map<number, { gh: GitHubJob; lastFinish: number; jobs: number }>()
  for (const job of ran) {
    const gh = links.get(job.id)
    if (!gh?.startedAt || !gh.completedAt) continue
    const entry = timed.get(gh.id) ?? { gh, lastFinish: -Infinity, jobs: 0 }
    entry.lastFinish = Math.max(entry.lastFinish, job.finishedAt ?? -Infinity)
    entry.jobs++
    timed.set(gh.id, entry)
  }
  const spans = [...timed.values()].map(entry => ({
    ...entry,
    spanMs: Math.max(0, Date.parse(entry.gh.completedAt!) - Date.parse(entry.gh.startedAt!))
  }))
  // One runner for several jobs is a pool worker; a matrix runner holds one job.
  const mode = spans.some(entry => entry.jobs > 1) ? 'pool' : 'matrix'
  // Every runner starts with the run and is needed until its last job ends: the rest of its
  // time is its own start-up and wind-down.
  const overheadMs =
    spans.length && Number.isFinite(firstStart)
      ? median(
          spans.map(entry => Math.max(0, entry.spanMs - Math.max(0, entry.lastFinish - firstStart)))
        )
      : undefined
  const overhead = overheadMs ?? 0

  // Earliest finish of each job with a runner free for every job: the matrix schedule.
  const earliest = new Map<string, number>()
  for (const job of view.jobs) {
    const before = Math.max(0, ...job.deps.map(dep => earliest.get(dep) ?? 0))
    earliest.set(job.id, before + (job.durationMs ?? 0))
  }
  const criticalMs = Math.max(0, ...earliest.values())
  let other: RunCost['other']
  if (mode === 'pool') {
    const holds = ran.map(job => earliest.get(job.id)! + overhead)
    other = {
      mode: 'matrix',
      runners: ran.length,
      runnerMs: holds.reduce((a, b) => a + b, 0),
      billedMinutes: holds.reduce((sum, ms) => sum + billed(ms), 0)
    }
  } else {
    const depth = new Map<string, number>()
    for (const job of view.jobs)
      depth.set(job.id, 1 + Math.max(-1, ...job.deps.map(dep => depth.get(dep) ?? 0)))
    const levels = new Set(depth.values()).size
    const workers = Math.max(1, Math.min(ran.length, Math.ceil(view.jobs.length / levels)))
    const perWorker = Math.max(criticalMs, jobMs / workers) + overhead
    other = {
      mode: 'pool',
      runners: workers,
      runnerMs: workers * perWorker,
      billedMinutes: workers * billed(perWorker)
    }
  }
  return {
    mode,
    runners: spans.length,
    runnerMs: spans.length ? spans.reduce((sum, entry) => sum + entry.spanMs, 0) : undefined,
    billedMinutes: spans.length
      ? spans.reduce((sum, entry) => sum + billed(entry.spanMs), 0)
      : undefined,
    jobMs,
    overheadMs,
    other
  }
}

/** The summary's "Cost" section; empty when no job of this attempt ran. */
export function renderCost(cost: RunCost | undefined): string[] {
  if (!cost) return []
  const ratio = (ms: number | undefined) =>
    ms === undefined || !cost.jobMs ? '–' : (ms / cost.jobMs).toFixed(2)
  const time = (ms: number | undefined) => (ms === undefined ? '–' : formatDuration(ms))
  const lines = [
    '### Cost',
    '',
    '| | runners | runner time | billed minutes | runner time / job time |',
    '|---|---:|---:|---:|---:|',
    `| this run (${cost.mode}) | ${cost.runners || '–'} | ${time(cost.runnerMs)} | ${cost.billedMinutes ?? '–'} | ${ratio(cost.runnerMs)} |`,
    `| ${cost.other.mode}, estimated | ${cost.other.runners} | ${time(cost.other.runnerMs)} | ${cost.other.billedMinutes} | ${ratio(cost.other.runnerMs)} |`,
    ''
  ]
  const what =
    cost.runnerMs === undefined
      ? "GitHub's job times could not be read, so this run's runner time is unknown; the estimate leaves out each runner's start-up."
      : `Runner time: GitHub's start to end of the ${cost.runners} job(s) that ran the plan's jobs (billed: each rounded up to a minute). ` +
        `Each spent about ${formatDuration(cost.overheadMs ?? 0)} outside them (median), which the estimate adds per runner.`
  lines.push(
    `Job time used: ${formatDuration(cost.jobMs)}. ${what} ` +
      (cost.other.mode === 'pool'
        ? `The pool estimate: ${cost.other.runners} worker(s) (workers: auto) for the longer of the critical path and the job time shared out.`
        : 'The matrix estimate: one runner per job, each from the start of the run to the end of its job.'),
    ''
  )
  return lines
}

const billed = (ms: number) => Math.max(1, Math.ceil(ms / 60_000))

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}
