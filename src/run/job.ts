import * as core from '@actions/core'
import { join } from 'node:path'
import type { BackendClient } from '../backend/client.js'
import type { RunCapabilities } from '../orun/cli.js'
import { BackendError } from '../backend/client.js'
import type { TokenSource } from '../backend/auth.js'
import { spread } from '../common/retry.js'
import type { Plan } from '../plan/model.js'
import { acquireJob, type Acquired, type AcquireStats } from './acquire.js'
import { abortableSleep } from './cancel.js'
import { executeJob } from './execute.js'
import type { RunInputs } from './inputs.js'
import { LogStream } from './logstream.js'
import { secretValuesOf } from './child-env.js'
import { Redactor, envValues } from './redact.js'
import { saveInFlight, type InFlight } from './state.js'
import type { JobResult } from './summary.js'

/**
 * The lifecycle of one job on this runner: claim (or wait, mirror, block),
 * execute with heartbeat and live log, report the result, flush the log.
 */

/** Lines of output quoted in a failed job's error text. */
const ERROR_TAIL_LINES = 15
const STOP_GRACE_MS = 5_000
const FINAL_LOG_SPREAD_MS = 1_500

export interface JobContext {
  jobId: string
  inputs: RunInputs
  plan: Plan
  client: BackendClient
  tokens: TokenSource
  runnerId: string
  tempDir: string
  inFlight: InFlight
  cancel: AbortSignal
  binary: string
  capabilities: RunCapabilities
  ensureRun: () => Promise<void>
  /** Pool mode: the job was already claimed by the caller (no wait, no claim here). */
  claimed?: { takeover: boolean }
  /** Pause before the final log upload (default 1.5 s, spread); a pacing pool worker needs none. */
  finalLogSpreadMs?: number
}

export async function runJob(ctx: JobContext): Promise<JobResult> {
  const { jobId, inputs, client } = ctx
  const stats: AcquireStats = { waitedMs: 0, polls: 0 }
  // A pool worker claims before it calls: then there is nothing left to acquire.
  const acquire: typeof acquireJob = ctx.claimed ? alreadyClaimed(ctx.claimed) : acquireJob
  const acquired = await acquire(
    {
      client,
      plan: ctx.plan,
      runId: inputs.runId,
      runnerId: ctx.runnerId,
      onDuplicate: inputs.onDuplicate,
      dependencyTimeoutMs: inputs.dependencyTimeoutMs,
      staleHeartbeatMs: 3 * inputs.heartbeatIntervalMs,
      ensureRun: ctx.ensureRun,
      sleep: ms => abortableSleep(ms, ctx.cancel),
      now: Date.now,
      log: message => core.info(message)
    },
    jobId,
    stats
  )
  const base = {
    jobId,
    durationMs: 0,
    waitMs: stats.waitedMs,
    attempts: stats.polls,
    tookOver: false
  }
  switch (acquired.kind) {
    case 'finished':
      if (acquired.status === 'success') {
        core.info(
          `${jobId} already succeeded${acquired.mirrored ? ' on another runner' : ''}: not running it again.`
        )
        return {
          ...base,
          status: acquired.mirrored ? 'success' : 'already-complete',
          detail: acquired.mirrored ? 'ran on another runner' : 'already complete'
        }
      }
      return {
        ...base,
        status: 'failed',
        detail: `failed${acquired.mirrored ? ' on another runner' : ' earlier'}: ${acquired.lastError ?? 'no error text'}${rerunHint(inputs.runId)}`
      }
    case 'skipped':
      core.info(
        `${jobId} is running on another runner (${acquired.owner ?? 'unknown'}); on-duplicate is skip.`
      )
      return {
        ...base,
        status: 'skipped',
        detail: `owned by ${acquired.owner ?? 'another runner'}`
      }
    case 'blocked': {
      const names = acquired.upstream
        .map(u => `${u.jobId} (${u.lastError ? oneLine(u.lastError) : 'failed'})`)
        .join(', ')
      core.error(`${jobId} will not run: upstream job(s) failed: ${names || 'a dependency'}.`)
      return { ...base, status: 'blocked', detail: `upstream failed: ${names || 'a dependency'}` }
    }
  }
  if (acquired.takeover)
    core.warning(
      `${jobId}: the previous runner's heartbeat had expired; this runner took the job over.`
    )

  const spoolFile = join(ctx.tempDir, `log-${ctx.inFlight.jobs.length}-${Date.now()}.txt`)
  ctx.inFlight.jobs.push({ jobId, spoolFile })
  saveInFlight(ctx.inFlight)
  const log = new LogStream({
    upload: text => client.uploadLog(inputs.runId, jobId, text),
    // What the child's environment leaves out (tokens, inputs) is redacted too, in case a tool prints it.
    redactor: new Redactor(
      [...envValues(inputs.redactEnv), ...secretValuesOf(process.env)],
      () => ctx.tokens.issued
    ),
    intervalMs: inputs.logUploadIntervalMs,
    spoolFile,
    warn: message => core.warning(message)
  })
  // A plain header, not a group: orun prints one ::group:: per step, and GitHub does not nest groups.
  core.info(`── orun run ${jobId} ──`)
  const execution = await executeJob({
    client,
    plan: ctx.plan,
    jobId,
    runId: inputs.runId,
    runnerId: ctx.runnerId,
    binary: ctx.binary,
    capabilities: ctx.capabilities,
    workingDirectory: inputs.workingDirectory,
    extraArgs: inputs.args,
    tempDir: ctx.tempDir,
    heartbeatIntervalMs: inputs.heartbeatIntervalMs,
    stopGraceMs: STOP_GRACE_MS,
    log,
    cancel: ctx.cancel
  })
  const result = { ...base, durationMs: execution.durationMs, tookOver: acquired.takeover }
  if (execution.outcome === 'aborted') {
    // The lease is gone: the new owner reports the result and owns the log.
    ctx.inFlight.jobs = ctx.inFlight.jobs.filter(j => j.jobId !== jobId)
    saveInFlight(ctx.inFlight)
    return {
      ...result,
      status: 'failed',
      detail: 'taken over by another runner (this runner lost its lease); not reported from here'
    }
  }
  const error =
    execution.outcome === 'cancelled'
      ? 'cancelled: the runner was stopped before the job finished'
      : execution.outcome === 'failed'
        ? (execution.reason ??
          `orun exited with code ${execution.exitCode ?? 'none (killed)'}; last output:\n${log.tail(ERROR_TAIL_LINES)}`)
        : undefined
  // The result first: dependents wait on it, while the final log only has readers.
  const reported = await report(client, inputs.runId, jobId, ctx.runnerId, error)
  // Every runner of a DAG level reports at about the same moment; spreading the final
  // uploads keeps them from crowding out the results and claims that gate the next level.
  const spreadMs = ctx.finalLogSpreadMs ?? FINAL_LOG_SPREAD_MS
  if (spreadMs > 0) await new Promise(resolve => setTimeout(resolve, spread(spreadMs, 1)))
  await log.flush(true)
  ctx.inFlight.jobs = ctx.inFlight.jobs.filter(j => j.jobId !== jobId)
  saveInFlight(ctx.inFlight)
  return {
    ...result,
    status: error ? 'failed' : 'success',
    logRef: log.logRef,
    detail: [error && oneLine(error), reported].filter(Boolean).join('; ') || undefined
  }
}

function alreadyClaimed(claimed: { takeover: boolean }) {
  return async (): Promise<Acquired> => ({ kind: 'claimed', takeover: claimed.takeover })
}

/** The first line of an error text and the last line of output it quotes, for summaries. */
function oneLine(error: string): string {
  const lines = error.split('\n').filter(line => line.trim())
  return lines.length > 1 ? `${lines[0]} … ${lines[lines.length - 1].trim()}` : lines[0]
}

/** Sends the terminal update; returns a note when another runner owns the job by now. */
async function report(
  client: BackendClient,
  runId: string,
  jobId: string,
  runnerId: string,
  error?: string
): Promise<string | undefined> {
  try {
    await client.update(runId, jobId, runnerId, error ? 'failed' : 'success', error)
    return undefined
  } catch (caught) {
    if (caught instanceof BackendError && caught.status === 400) {
      const note = `the backend refused the result (${caught.message}): another runner owns ${jobId} now, and its result counts`
      core.warning(note)
      return note
    }
    throw caught
  }
}

/** A failed job in a run of an earlier attempt stays failed: only "Re-run all jobs" gets a fresh run id. */
function rerunHint(runId: string): string {
  const attempt = /^gha-\d+-(\d+)-/.exec(runId)?.[1]
  const current = process.env.GITHUB_RUN_ATTEMPT
  return attempt && current && Number(current) > Number(attempt)
    ? ` (this is attempt ${current} re-using run id ${runId} from attempt ${attempt}: use "Re-run all jobs" so the plan job makes a fresh run id)`
    : ''
}
