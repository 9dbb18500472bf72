import * as core from '@actions/core'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BackendClient } from '../backend/client.js'
import { startJob, type JobProcess, type RunCapabilities } from '../orun/cli.js'
import { singleJobPlan, type Plan } from '../plan/model.js'
import { childEnvironment } from './child-env.js'
import { startHeartbeat } from './heartbeat.js'
import { missingSecrets, missingSecretsMessage } from './job-secrets.js'
import type { LogStream } from './logstream.js'
import { explainNonRun, readRunAccount } from './run-evidence.js'

/** Executes one claimed job with the orun runtime while heartbeating and streaming its log. */
export interface ExecutionResult {
  /** aborted: the lease was lost (taken over); cancelled: this runner was told to stop. */
  outcome: 'success' | 'failed' | 'aborted' | 'cancelled'
  exitCode: number | null
  durationMs: number
  heartbeats: number
  /**
   * Why a failed job failed when orun's exit code does not say it: secrets
   * missing before the start, or orun exiting 0 without running the job.
   */
  reason?: string
}

export interface ExecuteOptions {
  client: BackendClient
  plan: Plan
  jobId: string
  runId: string
  runnerId: string
  binary: string
  capabilities: RunCapabilities
  workingDirectory: string
  extraArgs: string[]
  tempDir: string
  heartbeatIntervalMs: number
  /** How long a stopped job gets between SIGTERM and SIGKILL. */
  stopGraceMs: number
  log: LogStream
  /** Aborted when the runner is cancelled (SIGINT/SIGTERM). */
  cancel: AbortSignal
  /** The action's environment, from which the child's is derived. Default: process.env. */
  env?: NodeJS.ProcessEnv
}

/** Lines of output quoted when orun exited 0 without running the job. */
const NON_RUN_TAIL_LINES = 15

export async function executeJob(options: ExecuteOptions): Promise<ExecutionResult> {
  const { jobId } = options
  const started = Date.now()
  const { env } = childEnvironment(options.env ?? process.env)

  const missing = missingSecrets(options.plan.byId.get(jobId)!, env)
  if (missing.length) {
    const reason = missingSecretsMessage(jobId, missing)
    core.info(reason)
    options.log.append(`[orun action] ${reason}\n`)
    return { outcome: 'failed', exitCode: null, durationMs: 0, heartbeats: 0, reason }
  }

  const planFile = join(options.tempDir, `job-${options.plan.id}-${Date.now()}.json`)
  writeFileSync(planFile, JSON.stringify(singleJobPlan(options.plan, jobId), null, 2))

  let child: JobProcess | undefined
  let stopping = false
  let stdout = ''
  const stop = () => {
    stopping = true
    void child?.stop(options.stopGraceMs)
  }
  const heartbeat = startHeartbeat({
    client: options.client,
    runId: options.runId,
    jobId,
    runnerId: options.runnerId,
    intervalMs: options.heartbeatIntervalMs,
    onAbort: () => {
      core.warning(
        `The backend says this runner no longer owns ${jobId} (another runner took it over): stopping it.`
      )
      stop()
    },
    warn: message => core.warning(message)
  })
  options.log.start()
  const onCancel = () => stop()
  options.cancel.addEventListener('abort', onCancel)
  try {
    child = startJob(options.binary, {
      planFile,
      jobId,
      execId: options.runId,
      cwd: options.workingDirectory,
      env,
      capabilities: options.capabilities,
      extraArgs: options.extraArgs,
      onOutput: (chunk, stream) => {
        if (stream === 'stdout') stdout += chunk
        // The runner itself reads this stream: ::add-mask:: from the job masks the GitHub log too.
        process.stdout.write(chunk)
        options.log.append(chunk)
      }
    })
    if (options.cancel.aborted) stop()
    const { exitCode } = await child.exited
    const durationMs = Date.now() - started
    const base = { exitCode, durationMs, heartbeats: heartbeat.beats }
    if (heartbeat.aborted) return { ...base, outcome: 'aborted' }
    if (options.cancel.aborted) return { ...base, outcome: 'cancelled' }
    if (exitCode !== 0 || stopping) return { ...base, outcome: 'failed' }
    // Exit 0 is not enough: orun's own account must show the job ran to success.
    const nonRun = explainNonRun(readRunAccount(stdout, jobId), {
      jobId,
      cwd: options.workingDirectory,
      extraArgs: options.extraArgs
    })
    if (!nonRun) return { ...base, outcome: 'success' }
    const tail = options.log.tail(NON_RUN_TAIL_LINES)
    options.log.append(`[orun action] ${nonRun}\n`)
    return { ...base, outcome: 'failed', reason: `${nonRun}; last output:\n${tail}` }
  } finally {
    heartbeat.stop()
    options.cancel.removeEventListener('abort', onCancel)
  }
}
