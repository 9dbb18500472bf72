import * as core from '@actions/core'
import { join } from 'node:path'
import type { BackendClient, CallOptions } from '../backend/client.js'
import type { RunCapabilities } from '../orun/cli.js'
import { BackendError, isCancelledCall } from '../backend/client.js'
import type { TokenSource } from '../backend/auth.js'
import { commandSafe, inline } from '../common/escape.js'
import { errorMessage } from '../common/errors.js'
import {
  isRunnerLost,
  runnerLostText,
  upstreamRunnerLostText,
  type LostRunner
} from '../common/runner-lost.js'
import { scaledBudget, spread, timerUnlessAborted } from '../common/retry.js'
import type { Plan } from '../plan/model.js'
import { acquireJob, type Acquired, type AcquireStats } from './acquire.js'
import { abortableSleep } from './cancel.js'
import { executeJob } from './execute.js'
import { LearnedLimit } from './pace.js'
import type { LimitHint } from '../common/limit-hint.js'
import type { RunInputs } from './inputs.js'
import { LogStream } from './logstream.js'
import { jobRedactor } from './redact.js'
import { dropInFlightJob, trackInFlightJob, updateInFlightJob, type InFlight } from './state.js'
import type { JobResult } from './summary.js'

/**
 * The lifecycle of one job on this runner: claim (or wait, mirror, block),
 * execute with heartbeat and live log, report the result, flush the log.
 */

/** Lines of output quoted in a failed job's error text. */
const ERROR_TAIL_LINES = 15
/** A job whose lease was lost: time to stop between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 5_000
const FINAL_LOG_SPREAD_MS = 1_500
/**
 * How long the final update keeps trying through an outage or a rate-limit storm
 * (orun's own client: 90 s). Dependents wait on it, and the job's own time is
 * better spent here than failing a finished job; the post step tries again after.
 */
const FINAL_UPDATE_BUDGET_MS = 5 * 60_000
/** The result is reported before the final log: a log that cannot be stored in this long is given up. */
const FINAL_FLUSH_MS = 60_000
/**
 * A pacing pool worker's requests wait their turn behind a crowded rate limit (up to 15 s a
 * turn), so its final log gets as long as the result: the log is still the job's own.
 */
export const PACED_FINAL_FLUSH_MS = FINAL_UPDATE_BUDGET_MS
/**
 * Cancelling: GitHub sends SIGINT, SIGTERM 7.5 s later, SIGKILL 2.5 s after that.
 * orun gets 3 s to stop, reporting the cancel 2.5 s, its last log 1.5 s: about 7 s,
 * and a second signal cuts whatever is left. Whatever is not delivered by then is
 * in the step state for the post step.
 */
const CANCEL_GRACE_MS = 3_000
const CANCELLED_REPORT_BUDGET_MS = 2_500
const CANCELLED_FLUSH_MS = 1_500

export interface JobContext {
  jobId: string
  inputs: RunInputs
  plan: Plan
  client: BackendClient
  tokens: TokenSource
  runnerId: string
  tempDir: string
  inFlight: InFlight
  /** The first SIGINT/SIGTERM: stop the job and report it cancelled. */
  cancel: AbortSignal
  /** A second signal: GitHub is about to kill the process; cut every remaining wait. */
  hurry: AbortSignal
  binary: string
  capabilities: RunCapabilities
  /** The rate limit the plan step's probe found, when the plan artifact carried it. */
  limitHint?: LimitHint
  ensureRun: () => Promise<void>
  /** Pool mode: the job was already claimed by the caller (no wait, no claim here). */
  claimed?: { takeover: boolean }
  /** Pause before the final log upload (default 1.5 s, spread); a pacing pool worker needs none. */
  finalLogSpreadMs?: number
  /** How long the final log upload may take (default 60 s). */
  finalFlushMs?: number
  /**
   * Pool mode: takes the final log upload once the result is delivered, so the worker claims
   * its next job while the log is still on its way; the caller awaits it before it ends (the
   * result's logRef is filled in when it lands).
   */
  finalLogInBackground?: (upload: Promise<void>) => void
}

export async function runJob(ctx: JobContext): Promise<JobResult> {
  const { jobId, inputs, client } = ctx
  const stats: AcquireStats = { waitedMs: 0, polls: 0 }
  // A pool worker claims before it calls: then there is nothing left to acquire.
  const acquire: typeof acquireJob = ctx.claimed ? alreadyClaimed(ctx.claimed) : acquireJob
  // Saved before the first claim is sent: a main step killed between the backend's grant and
  // its answer leaves the post step this job to settle (seen in a test at load 12).
  if (!ctx.claimed) trackInFlightJob(ctx.inFlight, { jobId, spoolFile: '', unconfirmed: true })
  let acquired
  try {
    acquired = await acquire(
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
        log: message => core.info(commandSafe(message)),
        limit: new LearnedLimit(
          () => client.stats.rateLimited,
          () => client.stats.rateLimitBurst,
          ctx.limitHint
        )
      },
      jobId,
      stats
    )
  } catch (error) {
    // A claim cut short by a cancel may have landed: the entry stays for the post step. Any
    // other end of the wait claimed nothing.
    if (!(isCancelledCall(error) && (error as BackendError).endpoint.endsWith('/claim')))
      dropInFlightJob(ctx.inFlight, jobId)
    throw error
  }
  if (acquired.kind !== 'claimed') dropInFlightJob(ctx.inFlight, jobId)
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
          `${inline(jobId)} already succeeded${acquired.mirrored ? ' on another runner' : ''}: not running it again.`
        )
        return {
          ...base,
          status: acquired.mirrored ? 'success' : 'already-complete',
          detail: acquired.mirrored ? 'ran on another runner' : 'already complete'
        }
      }
      if (isRunnerLost(acquired.lastError)) {
        const lost = { jobId, runnerId: acquired.runnerId ?? null }
        core.error(commandSafe(`${inline(jobId)}: ${runnerLostText(lost)}.`))
        return { ...base, status: 'failed', detail: runnerLostText(lost), lostRunners: [lost] }
      }
      return {
        ...base,
        status: 'failed',
        detail: `failed${acquired.mirrored ? ' on another runner' : ' earlier'}: ${acquired.lastError ?? 'no error text'}`
      }
    case 'skipped':
      core.info(
        `${inline(jobId)} is running on another runner (${inline(acquired.owner ?? 'unknown')}); on-duplicate is skip.`
      )
      return {
        ...base,
        status: 'skipped',
        detail: `owned by ${acquired.owner ?? 'another runner'}`
      }
    case 'blocked': {
      // A lost runner's job did not fail by its own steps: it is named apart.
      const lostRunners: LostRunner[] = acquired.upstream
        .filter(u => isRunnerLost(u.lastError))
        .map(u => ({ jobId: u.jobId, runnerId: u.runnerId }))
      const names = acquired.upstream
        .filter(u => !isRunnerLost(u.lastError))
        .map(u => `${inline(u.jobId)} (${u.lastError ? oneLine(u.lastError) : 'failed'})`)
        .join(', ')
      const why = [
        names || !lostRunners.length ? `upstream failed: ${names || 'a dependency'}` : '',
        lostRunners.length ? upstreamRunnerLostText(lostRunners) : ''
      ]
        .filter(Boolean)
        .join('; ')
      core.error(commandSafe(`${inline(jobId)} will not run: ${why}.`))
      return {
        ...base,
        status: 'blocked',
        detail: why,
        ...(lostRunners.length ? { lostRunners } : {})
      }
    }
  }
  if (acquired.takeover)
    core.warning(
      `${inline(jobId)}: the previous runner's heartbeat had expired; this runner took the job over.`
    )

  const spoolFile = join(ctx.tempDir, `log-${ctx.inFlight.jobs.length}-${Date.now()}.txt`)
  trackInFlightJob(ctx.inFlight, { jobId, spoolFile })
  const log = new LogStream({
    upload: (text, call) => client.uploadLog(inputs.runId, jobId, text, call),
    // What the child's environment leaves out (tokens, inputs) is redacted too, in case a tool prints it.
    redactor: jobRedactor({
      redactEnv: inputs.redactEnv,
      inputSecrets: [inputs.token, inputs.githubToken],
      tokens: () => ctx.tokens.issued
    }),
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
    cancelGraceMs: CANCEL_GRACE_MS,
    onProcessIds: orunProcesses => updateInFlightJob(ctx.inFlight, jobId, { orunProcesses }),
    log,
    cancel: ctx.cancel,
    hurry: ctx.hurry
  })
  // orun and everything it started are gone: the post step has nothing to stop.
  updateInFlightJob(ctx.inFlight, jobId, { orunProcesses: undefined })
  const result = { ...base, durationMs: execution.durationMs, tookOver: acquired.takeover }
  if (execution.outcome === 'aborted') {
    // The lease is gone: the new owner reports the result and owns the log.
    dropInFlightJob(ctx.inFlight, jobId)
    // On the 2026-05-08 build nobody took it over: the backend's sweep declared this runner lost.
    const record = await client.jobStatus(inputs.runId, jobId).catch(() => undefined)
    if (record && isRunnerLost(record.lastError)) {
      const lost = { jobId, runnerId: ctx.runnerId }
      return {
        ...result,
        status: 'failed',
        detail: `${runnerLostText(lost)} (its heartbeats did not reach the backend in time)`,
        lostRunners: [lost]
      }
    }
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
  const status = error ? 'failed' : 'success'
  // Saved before anything can go wrong: the post step delivers exactly this result.
  updateInFlightJob(ctx.inFlight, jobId, { outcome: error ? { status, error } : { status } })
  const cancelled = execution.outcome === 'cancelled'
  // The result first: dependents wait on it, while the final log only has readers.
  const delivery = await report(
    client,
    inputs.runId,
    jobId,
    ctx.runnerId,
    status,
    error,
    cancelled
      ? { budgetMs: CANCELLED_REPORT_BUDGET_MS, signal: ctx.hurry }
      : { budgetMs: scaledBudget(FINAL_UPDATE_BUDGET_MS), signal: ctx.cancel }
  )
  const finished = {
    ...result,
    endedAt: Date.now(),
    status,
    detail: [error && oneLine(error), delivery.note].filter(Boolean).join('; ') || undefined
  } as const
  // Not delivered: the state keeps the result, and the spool file the log, for the post step.
  if (!delivery.delivered) return finished
  updateInFlightJob(ctx.inFlight, jobId, { reported: true })
  const done: JobResult = { ...finished }
  const finalLog = async () => {
    if (!cancelled) {
      // Every runner of a DAG level reports at about the same moment; spreading the final
      // uploads keeps them from crowding out the results and claims that gate the next level.
      const spreadMs = ctx.finalLogSpreadMs ?? FINAL_LOG_SPREAD_MS
      if (spreadMs > 0) await timerUnlessAborted(spread(spreadMs, 1), ctx.cancel)
    }
    const stored = await log.flush(
      true,
      cancelled
        ? { timeoutMs: CANCELLED_FLUSH_MS, signal: ctx.hurry }
        : { timeoutMs: scaledBudget(ctx.finalFlushMs ?? FINAL_FLUSH_MS), signal: ctx.cancel }
    )
    // A flush cut short by a signal leaves the log to the post step; one that timed out is given up.
    const cutShort = !stored && (cancelled ? ctx.hurry.aborted : ctx.cancel.aborted)
    if (!cutShort) dropInFlightJob(ctx.inFlight, jobId)
    done.logRef = log.logRef
  }
  if (ctx.finalLogInBackground && !cancelled) ctx.finalLogInBackground(finalLog())
  else await finalLog()
  return done
}

function alreadyClaimed(claimed: { takeover: boolean }) {
  return async (): Promise<Acquired> => ({ kind: 'claimed', takeover: claimed.takeover })
}

/** The first line of an error text and the last line of output it quotes, for summaries. */
function oneLine(error: string): string {
  const lines = error.split('\n').filter(line => line.trim())
  return lines.length > 1 ? `${lines[0]} … ${lines[lines.length - 1].trim()}` : lines[0]
}

/**
 * Sends the terminal update. Delivered also when the backend refuses it because another
 * runner owns the job by now (its result counts; a note says so). Not delivered when
 * the retries ran out or a signal cut them short: the caller leaves it to the post step.
 */
async function report(
  client: BackendClient,
  runId: string,
  jobId: string,
  runnerId: string,
  status: 'success' | 'failed',
  error: string | undefined,
  call: CallOptions
): Promise<{ delivered: boolean; note?: string }> {
  try {
    await client.update(runId, jobId, runnerId, status, error, call)
    return { delivered: true }
  } catch (caught) {
    if (caught instanceof BackendError && caught.status === 400) {
      const note = `the backend refused the result (${caught.message}): another runner owns ${inline(jobId)} now, and its result counts`
      core.warning(commandSafe(note))
      return { delivered: true, note }
    }
    const why =
      caught instanceof BackendError
        ? caught.code === 'CANCELLED'
          ? 'the runner is stopping'
          : `${caught.describe()}${caught.describeRetries()}`
        : errorMessage(caught)
    const note = `result (${status}) not delivered yet; the post step retries`
    core.warning(
      commandSafe(
        `Could not deliver the result of ${inline(jobId)} (${status}) to the backend: ${why}. The result is saved in the step state, and this action's post step will deliver it.`
      )
    )
    return { delivered: false, note }
  }
}
