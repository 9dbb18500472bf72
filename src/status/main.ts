import * as core from '@actions/core'
import { connectBackend } from '../backend/session.js'
import { resolveBackendUrl } from '../backend/url.js'
import { UserError } from '../common/errors.js'
import { loadPlan } from '../run/plan-source.js'
import { logText, markdownText } from '../common/escape.js'
import { RERUN_AFTER_RUNNER_LOST, runnerLostText } from '../common/runner-lost.js'
import { estimateCost, renderCost } from './cost.js'
import { listAttemptJobs } from './github-jobs.js'
import { readStatusInputs, type StatusInputs } from './inputs.js'
import { linkJobs } from './links.js'
import { MAX_FAILED_LOGS, fetchLogTails } from './logs.js'
import { OUTCOMES, classifyRun, type RunView } from './outcome.js'
import { readRun } from './run-read.js'
import { problemLine, renderStatusSummary } from './summary.js'

/** GitHub shows at most 10 error annotations per step; the last one is the step's own failure. */
export const MAX_JOB_ANNOTATIONS = 9

/**
 * The status action: read the whole run from the backend, link each job to the
 * GitHub job that ran it, write the run's summary and annotations, set the
 * outputs, and fail the step as 'fail-on' says. Meant for the workflow's last
 * job (needs: [plan, run], if: always()), the one check branch protection requires.
 */
export async function run(): Promise<void> {
  const inputs = readStatusInputs()
  if (inputs.jobCount === 0) return reportEmptyPlan(inputs.runId)
  const plan = await loadPlan(inputs)
  if (!plan.order.length) return reportEmptyPlan(inputs.runId)

  const backendUrl = resolveBackendUrl(inputs.backendUrl, true)!
  const { client } = connectBackend({ backendUrl, audience: inputs.audience, token: inputs.token })
  const read = await readRun(client, inputs.runId, plan)
  const view = classifyRun(plan, read.runId, read.run, read.jobs)

  const notes: string[] = []
  if (!read.run) {
    notes.push(
      `Run ${read.runId} does not exist on the backend: no runner claimed any of the plan's ${plan.order.length} jobs. Every matrix job was cancelled or skipped before it claimed one, or the run jobs never started (check the run job's 'if:' and the workflow's concurrency settings).`
    )
  }
  const github = await listAttemptJobs(inputs.githubToken)
  if (github.problem) notes.push(github.problem)
  const links = linkJobs(view.jobs, github.jobs)
  // A lost runner's log tail says nothing about why: its steps did not fail.
  const failed = view.jobs
    .filter(job => job.outcome === 'failed' && !job.runnerLost)
    .map(job => job.id)
  const tails = await fetchLogTails(client, read.runId, failed)
  if (tails.notFetched) {
    notes.push(
      `Log tails are shown for the first ${MAX_FAILED_LOGS} failed jobs only; ${tails.notFetched} more failed jobs' logs were not read (each costs a request against the repository's rate limit).`
    )
  }
  const attempt = Number(process.env.GITHUB_RUN_ATTEMPT || '1')

  setOutputs(view)
  annotateFailures(view, links)
  if (view.jobs.some(job => job.runnerLost)) notes.push(RERUN_AFTER_RUNNER_LOST)
  await core.summary
    .addRaw(
      renderStatusSummary({
        view,
        planId: plan.id,
        links,
        tails,
        notes,
        attempt,
        now: Date.now(),
        cost: renderCost(estimateCost(view, links))
      })
    )
    .write()
  for (const note of notes) core.notice(note)
  core.info(
    logText(
      `Run ${read.runId}: ${view.verdict}; ${OUTCOMES.filter(o => view.counts[o])
        .map(o => `${view.counts[o]} ${o}`)
        .join(', ')}. ` +
        `Backend requests: ${client.stats.requests}; GitHub jobs linked: ${links.size} of ${view.jobs.length}.`
    )
  )
  failIfAsked(view, inputs)
}

async function reportEmptyPlan(runId: string): Promise<void> {
  core.notice('The plan has no jobs: nothing ran, and nothing had to. The run is a success.')
  core.setOutput('status', 'success')
  core.setOutput('counts', JSON.stringify(Object.fromEntries(OUTCOMES.map(o => [o, 0]))))
  for (const name of ['failed-jobs', 'blocked-jobs', 'not-run-jobs']) core.setOutput(name, '[]')
  core.setOutput('run-id', runId)
  await core.summary
    .addRaw(
      `## ✅ orun run succeeded\n\nThe plan of run ${markdownText(runId)} has no jobs: nothing to run.\n`
    )
    .write()
}

function setOutputs(view: RunView): void {
  const ids = (...outcomes: string[]) =>
    JSON.stringify(view.jobs.filter(job => outcomes.includes(job.outcome)).map(job => job.id))
  core.setOutput('status', view.verdict)
  core.setOutput('counts', JSON.stringify(view.counts))
  core.setOutput('failed-jobs', ids('failed'))
  core.setOutput('blocked-jobs', ids('blocked'))
  core.setOutput('not-run-jobs', ids('not-run', 'running'))
  core.setOutput('run-id', view.runId)
}

/** One error annotation per failed job, titled with its check name (workflow-command escaping by @actions/core). */
function annotateFailures(view: RunView, links: ReturnType<typeof linkJobs>): void {
  const failed = view.jobs.filter(job => job.outcome === 'failed')
  for (const job of failed.slice(0, MAX_JOB_ANNOTATIONS)) {
    if (job.runnerLost) {
      const lost = {
        runnerId: job.runnerId ?? null,
        jobUrl: links.get(job.id)?.htmlUrl ?? undefined
      }
      core.error(`${job.id}: ${runnerLostText(lost)}`, { title: `${job.name}: runner lost` })
      continue
    }
    const firstLine = job.error?.split('\n').find(line => line.trim()) ?? 'failed'
    core.error(`${job.id}: ${firstLine.slice(0, 500)}`, { title: job.name })
  }
  if (failed.length > MAX_JOB_ANNOTATIONS) {
    core.info(
      `${failed.length - MAX_JOB_ANNOTATIONS} more failed jobs are not annotated (GitHub shows 10 error annotations per step): see the summary.`
    )
  }
}

function failIfAsked(view: RunView, inputs: StatusInputs): void {
  const failing =
    (inputs.failOn.has('failed') && view.counts.failed > 0) ||
    (inputs.failOn.has('blocked') && view.counts.blocked > 0) ||
    // A missing run counts here too: every job of the plan is then not-run.
    (inputs.failOn.has('not-run') && view.counts['not-run'] + view.counts.running > 0)
  if (!failing) return
  const problems = problemLine(view) || 'the run does not exist'
  throw new UserError(`orun run ${view.runId} is ${view.verdict}: ${problems}.`)
}
