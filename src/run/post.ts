import * as core from '@actions/core'
import { existsSync, readFileSync } from 'node:fs'
import { connectBackend } from '../backend/session.js'
import { BackendError } from '../backend/client.js'
import { errorMessage } from '../common/errors.js'
import { commandSafe, inline } from '../common/escape.js'
import { getList } from '../common/inputs.js'
import { capLog, DEFAULT_MAX_LOG_BYTES } from './logstream.js'
import { Redactor, envValues } from './redact.js'
import { loadInFlight, saveInFlight } from './state.js'

/**
 * Runs after the main step, also when it was cancelled or crashed. A job the
 * main step claimed but never reported would block its dependents until the
 * 300 s heartbeat window ran out; marking it failed lets them fail fast.
 */
export async function post(): Promise<void> {
  const state = loadInFlight()
  if (!state?.jobs.length) return
  const { client, tokens } = connectBackend({
    backendUrl: state.backendUrl,
    audience: state.audience,
    token: core.getInput('token') || undefined
  })
  for (const { jobId, spoolFile } of state.jobs) {
    core.info(
      `${inline(jobId)} was claimed by this runner but never reported: marking it failed (cancelled).`
    )
    // The result first, as the main step does: it also proves the job is still ours, and a job
    // another runner took over (or that was reported after all) keeps its owner's log.
    try {
      await client.update(
        state.runId,
        jobId,
        state.runnerId,
        'failed',
        'cancelled: the workflow job was cancelled or its runner stopped before the job finished'
      )
    } catch (error) {
      if (error instanceof BackendError && error.status === 400) {
        core.info(
          commandSafe(`${inline(jobId)} is no longer this runner's to report (${error.message}).`)
        )
        continue
      }
      core.warning(`Could not mark ${jobId} as cancelled: ${errorMessage(error)}`)
    }
    try {
      if (existsSync(spoolFile)) {
        const redactor = new Redactor(envValues(getList('redact-env')), () => tokens.issued)
        const text = readFileSync(spoolFile, 'utf8') + '\n[orun action: the job was cancelled]\n'
        await client.uploadLog(
          state.runId,
          jobId,
          capLog(redactor.redact(text), DEFAULT_MAX_LOG_BYTES)
        )
      }
    } catch (error) {
      core.warning(`Could not upload the log of ${jobId}: ${errorMessage(error)}`)
    }
  }
  saveInFlight({ ...state, jobs: [] })
}
