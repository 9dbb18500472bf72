import * as core from '@actions/core'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BackendClient } from '../backend/client.js'
import type { ProcessIds } from '../common/process-tree.js'
import { startJob, type JobProcess } from '../orun/cli.js'
import { singleJobPlan, type Plan } from '../plan/model.js'
import { startHeartbeat } from './heartbeat.js'
import type { LogStream } from './logstream.js'

/** Executes one claimed job with the orun runtime while heartbeating and streaming its log. */
export interface ExecutionResult {
  /** aborted: the lease was lost (taken over); cancelled: this runner was told to stop. */
  outcome: 'success' | 'failed' | 'aborted' | 'cancelled'
  exitCode: number | null
  durationMs: number
  heartbeats: number
}

export interface ExecuteOptions {
  client: BackendClient
  plan: Plan
  jobId: string
  runId: string
  runnerId: string
  binary: string
  forceLocal: boolean
  workingDirectory: string
  extraArgs: string[]
  tempDir: string
  heartbeatIntervalMs: number
  /** How long a job stopped for a lost lease gets between SIGTERM and SIGKILL. */
  stopGraceMs: number
  /** The same when the runner is cancelled: shorter, to fit GitHub's cancel budget. */
  cancelGraceMs: number
  /** Called while orun runs with the sessions and groups of its processes (for the post step). */
  onProcessIds?: (ids: ProcessIds) => void
  log: LogStream
  /** Aborted when the runner is cancelled (SIGINT/SIGTERM). */
  cancel: AbortSignal
  /** A second signal: kill the job at once, without the rest of the grace. */
  hurry?: AbortSignal
}

export async function executeJob(options: ExecuteOptions): Promise<ExecutionResult> {
  const { jobId } = options
  // orun's local dependency check would refuse the job on a fresh runner; the claim already proved them.
  const planFile = join(options.tempDir, `job-${options.plan.id}-${Date.now()}.json`)
  writeFileSync(planFile, JSON.stringify(singleJobPlan(options.plan, jobId), null, 2))

  const started = Date.now()
  let child: JobProcess | undefined
  let stopping = false
  const stop = () => {
    stopping = true
    void child?.stop(options.cancel.aborted ? options.cancelGraceMs : options.stopGraceMs)
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
    warn: message => core.warning(message),
    cancel: options.cancel
  })
  options.log.start()
  const onCancel = () => stop()
  const onHurry = () => void child?.stop(0)
  options.cancel.addEventListener('abort', onCancel)
  options.hurry?.addEventListener('abort', onHurry)
  try {
    child = startJob(options.binary, {
      planFile,
      jobId,
      execId: options.runId,
      cwd: options.workingDirectory,
      env: process.env,
      forceLocal: options.forceLocal,
      extraArgs: options.extraArgs,
      onOutput: chunk => {
        // The runner itself reads this stream: ::add-mask:: from the job masks the GitHub log too.
        process.stdout.write(chunk)
        options.log.append(chunk)
      }
    })
    if (options.onProcessIds) child.onProcessIds(options.onProcessIds)
    if (options.cancel.aborted) stop()
    const { exitCode } = await child.exited
    if (child.leftovers)
      core.warning(
        `${jobId}: orun left ${child.leftovers} process(es) running; they were stopped with it.`
      )
    const outcome = heartbeat.aborted
      ? 'aborted'
      : options.cancel.aborted
        ? 'cancelled'
        : exitCode === 0 && !stopping
          ? 'success'
          : 'failed'
    return { outcome, exitCode, durationMs: Date.now() - started, heartbeats: heartbeat.beats }
  } finally {
    heartbeat.stop()
    options.cancel.removeEventListener('abort', onCancel)
    options.hurry?.removeEventListener('abort', onHurry)
  }
}
