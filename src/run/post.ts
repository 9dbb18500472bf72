import * as core from '@actions/core'
import { existsSync } from 'node:fs'
import { connectBackend, explainBackendError } from '../backend/session.js'
import { BackendError } from '../backend/client.js'
import { UserError, errorMessage } from '../common/errors.js'
import { commandSafe, inline } from '../common/escape.js'
import { getList } from '../common/inputs.js'
import { leftoverProcesses, signalProcesses } from '../common/process-tree.js'
import { scaledBudget } from '../common/retry.js'
import { storedLogOfFile } from './logstream.js'
import { jobRedactor } from './redact.js'
import { loadInFlight, saveInFlight, type InFlightJob } from './state.js'

/**
 * Runs after the main step, also when it was cancelled, crashed or was killed.
 * For every job the main step claimed and did not finish reporting it stops
 * what is left of its orun process tree, delivers the result the main step
 * saved (success stays success), or, when the outcome is unknown (the main
 * step died before orun finished), marks it failed so its dependents fail
 * fast instead of waiting out the 300 s heartbeat window.
 */

/** The post step tries again for a while after the main step's own retries. */
const POST_UPDATE_BUDGET_MS = 3 * 60_000
const POST_LOG_BUDGET_MS = 60_000
const UNKNOWN_OUTCOME =
  'cancelled: the workflow job was cancelled or its runner stopped before the job finished'

export async function post(): Promise<void> {
  const state = loadInFlight()
  if (!state?.jobs.length) return
  for (const job of state.jobs) stopLeftovers(job)
  const { client, tokens } = connectBackend({
    backendUrl: state.backendUrl,
    audience: state.audience,
    token: core.getInput('token') || undefined
  })
  const undelivered: string[] = []
  for (const job of [...state.jobs]) {
    const { jobId, outcome } = job
    let ours = true
    if (!job.reported) {
      const status = outcome?.status ?? 'failed'
      const error = outcome ? outcome.error : UNKNOWN_OUTCOME
      core.info(
        outcome
          ? `${inline(jobId)} finished (${status}) but its result was not delivered: delivering it now.`
          : job.unconfirmed
            ? `${inline(jobId)}: this runner stopped while claiming it, so the claim may have been granted: marking it failed (cancelled) if this runner holds it.`
            : `${inline(jobId)} was claimed by this runner but never reported: marking it failed (cancelled).`
      )
      // The result first, as the main step does: it also proves the job is still ours, and a job
      // another runner took over (or that was reported after all) keeps its owner's log.
      try {
        await client.update(state.runId, jobId, state.runnerId, status, error, {
          budgetMs: scaledBudget(POST_UPDATE_BUDGET_MS)
        })
        core.info(`Delivered ${inline(jobId)}: ${status}.`)
      } catch (failure) {
        if (failure instanceof BackendError && failure.status === 400) {
          core.info(
            commandSafe(
              job.unconfirmed
                ? `${inline(jobId)} was never this runner's (${failure.message}): nothing to settle.`
                : `${inline(jobId)} is no longer this runner's to report (${failure.message}).`
            )
          )
          ours = false
        } else {
          const explained = explainBackendError(failure, `reporting ${jobId}`, {
            runId: state.runId,
            jobId
          })
          core.warning(
            commandSafe(
              `Could not deliver the result of ${inline(jobId)} (${status}): ${errorMessage(explained)}`
            )
          )
          undelivered.push(`${inline(jobId)} (${status})`)
        }
      }
    }
    if (ours) await uploadSpooledLog(client, state.runId, job, tokens.issued)
    state.jobs = state.jobs.filter(j => j !== job)
    saveInFlight(state)
  }
  if (undelivered.length) {
    throw new UserError(
      commandSafe(
        `The result of ${undelivered.join(', ')} could not be delivered to the backend, by the main step or by this post step: ` +
          "its dependents will see the job as running until its heartbeat expires (300 s), then another runner may run it again. Check the backend's health at 'backend-url' and re-run the failed jobs."
      )
    )
  }
}

/** The orun the main step started may outlive it (the main step was killed): stop all of it. */
function stopLeftovers(job: InFlightJob): void {
  if (!job.orunProcesses) return
  const left = leftoverProcesses(job.orunProcesses)
  if (!left.length) return
  const killed = signalProcesses(left, 'SIGKILL')
  core.warning(
    `${inline(job.jobId)}: the main step left ${killed} orun process(es) running; they were killed.`
  )
}

async function uploadSpooledLog(
  client: ReturnType<typeof connectBackend>['client'],
  runId: string,
  job: InFlightJob,
  issued: readonly string[]
): Promise<void> {
  try {
    if (!existsSync(job.spoolFile)) return
    // Every source the main step redacts with; the job's own masks are learnt from the spool.
    const redactor = jobRedactor({
      redactEnv: getList('redact-env'),
      inputSecrets: [core.getInput('token'), core.getInput('github-token')],
      tokens: () => issued
    })
    const ending = job.outcome
      ? `\n[orun action: the job finished (${job.outcome.status}); this log was uploaded by the post step]\n`
      : '\n[orun action: the job was cancelled]\n'
    const text = storedLogOfFile(job.spoolFile, redactor, ending)
    await client.uploadLog(runId, job.jobId, text, { budgetMs: scaledBudget(POST_LOG_BUDGET_MS) })
  } catch (error) {
    core.warning(
      commandSafe(`Could not upload the log of ${inline(job.jobId)}: ${errorMessage(error)}`)
    )
  }
}
