import type { JobView } from './outcome.js'

/** A job of this workflow run attempt, as GitHub's REST API lists it (only what linking needs). */
export interface GitHubJob {
  id: number
  name: string
  htmlUrl: string | null
  runnerName: string | null
  startedAt: string | null
  completedAt: string | null
  runAttempt: number | null
}

/** Backend and GitHub clocks differ; a job's start is matched to a runner's window with this slack. */
const CLOCK_SLACK_MS = 120_000

/**
 * Which GitHub job ran each orun job, so every row links to its log. Two clues:
 *
 * - The runner. The run action's runner ids start with the runner's name
 *   (`<RUNNER_NAME>-<attempt>-…`), which GitHub reports as each job's
 *   `runner_name`. This names the GitHub job that really executed the orun job,
 *   also for environment slices and worker pools, where one GitHub job runs many.
 * - The name. The matrix job's name as GitHub shows it is the `name:` the
 *   workflow set, so a GitHub job matches when its name is the plan's check name
 *   or the job id, ends with one after a space (`name: run ${{ matrix.job }}`),
 *   or lists one among GitHub's default matrix values (`run (api.dev.deploy, dev, api)`).
 *
 * The runner wins (a matrix job named after the orun job may only have seen it
 * done elsewhere); the name decides between several runner matches, and stands
 * alone when no runner matches (a job that never ran: blocked, cancelled). When
 * one runner ran several GitHub jobs, the one whose time window holds the orun
 * job's start wins.
 */
export function linkJobs(
  jobs: readonly JobView[],
  githubJobs: readonly GitHubJob[]
): Map<string, GitHubJob> {
  const links = new Map<string, GitHubJob>()
  if (!githubJobs.length) return links
  for (const job of jobs) {
    const names = job.name === job.id ? [job.id] : [job.name, job.id]
    const named = (pool: readonly GitHubJob[]) =>
      pool.filter(gh => names.some(name => nameMatches(gh.name, name)))
    const byRunner = job.runnerId ? githubJobs.filter(gh => ranOn(gh, job.runnerId!)) : []
    const chosen = byRunner.length
      ? byRunner.length > 1 && named(byRunner).length
        ? closest(named(byRunner), job)
        : closest(byRunner, job)
      : closest(named(githubJobs), job)
    if (chosen) links.set(job.id, chosen)
  }
  return links
}

export function nameMatches(githubName: string, candidate: string): boolean {
  if (githubName === candidate || githubName.endsWith(` ${candidate}`)) return true
  const values = /\(([^()]*)\)$/.exec(githubName)?.[1]
  return values !== undefined && values.split(', ').includes(candidate)
}

function ranOn(gh: GitHubJob, runnerId: string): boolean {
  return !!gh.runnerName && (runnerId === gh.runnerName || runnerId.startsWith(`${gh.runnerName}-`))
}

/** Of several candidates, the one whose run window holds the job's start (else the nearest start). */
function closest(candidates: readonly GitHubJob[], job: JobView): GitHubJob | undefined {
  if (candidates.length <= 1 || job.startedAt === undefined) return candidates[0]
  const start = job.startedAt
  // Windows that hold the start come first (a penalty larger than any time gap), then the nearest start.
  const outside = 1e15
  const distance = (gh: GitHubJob) => {
    const from = gh.startedAt ? Date.parse(gh.startedAt) : NaN
    const to = gh.completedAt ? Date.parse(gh.completedAt) : Infinity
    if (Number.isNaN(from)) return Infinity
    const inside = start >= from - CLOCK_SLACK_MS && start <= to + CLOCK_SLACK_MS
    return (inside ? 0 : outside) + Math.abs(start - from)
  }
  return candidates.reduce((a, b) => (distance(b) < distance(a) ? b : a))
}
