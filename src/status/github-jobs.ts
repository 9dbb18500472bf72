import * as github from '@actions/github'
import { errorMessage } from '../common/errors.js'
import { withRetry } from '../common/retry.js'
import type { GitHubJob } from './links.js'

/**
 * The jobs of this workflow run attempt, read through GitHub's REST API
 * (`GET /repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt}/jobs`,
 * 100 a page, every page), to link each orun job to its log on GitHub. The
 * base URL comes from GITHUB_API_URL (GHES, and the local stand-in in tests).
 *
 * Links are a convenience: any failure is reported as `problem` and the
 * summary is written without them.
 */
export interface GitHubJobsLookup {
  jobs: GitHubJob[]
  /** Why there are no links, in one sentence, when there are none. */
  problem?: string
}

const PAGE_SIZE = 100
const ATTEMPTS = 3

export async function listAttemptJobs(token: string | undefined): Promise<GitHubJobsLookup> {
  if (!token) {
    return {
      jobs: [],
      problem:
        "No 'github-token', so rows do not link to GitHub's job logs (pass github-token: ${{ github.token }}, the default)."
    }
  }
  const runId = Number(process.env.GITHUB_RUN_ID)
  const attempt = Number(process.env.GITHUB_RUN_ATTEMPT || '1')
  const repository = process.env.GITHUB_REPOSITORY ?? ''
  const [owner, repo] = repository.split('/')
  if (!Number.isInteger(runId) || !owner || !repo) {
    return {
      jobs: [],
      problem:
        'GITHUB_RUN_ID or GITHUB_REPOSITORY is not set (not a GitHub Actions run), so rows do not link to job logs.'
    }
  }
  const octokit = github.getOctokit(token)
  try {
    const jobs = await withRetry(
      () =>
        octokit.paginate(octokit.rest.actions.listJobsForWorkflowRunAttempt, {
          owner,
          repo,
          run_id: runId,
          attempt_number: attempt,
          per_page: PAGE_SIZE
        }),
      {
        attempts: ATTEMPTS,
        baseMs: 1000,
        capMs: 5000,
        // Network failures and 5xx may pass; an answer like 403 or 404 will not change.
        decide: error => ({ retry: statusOf(error) === undefined || statusOf(error)! >= 500 })
      }
    )
    return {
      jobs: jobs.map(job => ({
        id: job.id,
        name: job.name,
        htmlUrl: job.html_url ?? null,
        runnerName: job.runner_name ?? null,
        startedAt: job.started_at ?? null,
        completedAt: job.completed_at ?? null,
        runAttempt: job.run_attempt ?? null
      }))
    }
  } catch (error) {
    return { jobs: [], problem: explain(error) }
  }
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown })?.status
  return typeof status === 'number' ? status : undefined
}

function explain(error: unknown): string {
  const status = statusOf(error)
  const what = `Listing this run's jobs through the GitHub API failed (${status ? `HTTP ${status}: ` : ''}${errorMessage(error)})`
  if (status === 401 || status === 403 || status === 404) {
    return `${what}, so rows do not link to job logs. The token needs 'actions: read': add it to the job's permissions.`
  }
  return `${what}, so rows do not link to job logs.`
}
