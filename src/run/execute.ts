import * as core from '@actions/core'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BackendClient } from '../backend/client.js'
import { inline } from '../common/escape.js'
import type { ProcessIds } from '../common/process-tree.js'
import { startJob, type JobProcess, type RunCapabilities } from '../orun/cli.js'
import { singleJobPlan, type Plan } from '../plan/model.js'
import { childEnvironment } from './child-env.js'
import { startHeartbeat } from './heartbeat.js'
import { missingSecrets, missingSecretsMessage } from './job-secrets.js'
import type { LogStream } from './logstream.js'
import { MaskRelay } from './mask-relay.js'
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
  /** The action's environment, from which the child's is derived. Default: process.env. */
  env?: NodeJS.ProcessEnv
}

/** orun's own output kept for its account of the run: the head (job header) and the end. */
const MAX_OWN_OUTPUT_CHARS = 1024 * 1024
const OWN_HEAD_LINES = 200

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
  // orun's own lines only (step output is in the log stream): its account of the run.
  const orunOwn: string[] = []
  let orunOwnChars = 0
  const relay = new MaskRelay(
    text => process.stdout.write(text),
    line => {
      orunOwn.push(line)
      orunOwnChars += line.length
      // A plain-mode orun streams step output outside blocks: keep its head and end only.
      while (orunOwnChars > MAX_OWN_OUTPUT_CHARS && orunOwn.length > OWN_HEAD_LINES + 1)
        orunOwnChars -= orunOwn.splice(OWN_HEAD_LINES, 1)[0].length
    }
  )
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
      env,
      capabilities: options.capabilities,
      extraArgs: options.extraArgs,
      onOutput: (chunk, stream) => {
        // The runner itself reads this stream: the relay re-prints the job's ::add-mask::
        // outside orun's stop-commands blocks, so it masks the GitHub log too.
        if (stream === 'stdout') relay.push(chunk)
        else process.stdout.write(chunk)
        options.log.append(chunk)
      }
    })
    if (options.onProcessIds) child.onProcessIds(options.onProcessIds)
    if (options.cancel.aborted) stop()
    const { exitCode } = await child.exited
    relay.end()
    if (child.leftovers)
      core.warning(
        `${inline(jobId)}: orun left ${child.leftovers} process(es) running; they were stopped with it.`
      )
    const durationMs = Date.now() - started
    const base = { exitCode, durationMs, heartbeats: heartbeat.beats }
    if (heartbeat.aborted) return { ...base, outcome: 'aborted' }
    if (options.cancel.aborted) return { ...base, outcome: 'cancelled' }
    if (exitCode !== 0 || stopping) return { ...base, outcome: 'failed' }
    // Exit 0 is not enough: orun's own account must show the job ran to success.
    const nonRun = explainNonRun(readRunAccount(orunOwn.join('\n'), jobId), {
      jobId,
      cwd: options.workingDirectory,
      extraArgs: options.extraArgs
    })
    if (!nonRun) return { ...base, outcome: 'success' }
    const tail = options.log.tail(NON_RUN_TAIL_LINES)
    options.log.append(`[orun action] ${nonRun}\n`)
    return { ...base, outcome: 'failed', reason: `${nonRun}; last output:\n${tail}` }
  } finally {
    relay.end()
    heartbeat.stop()
    options.cancel.removeEventListener('abort', onCancel)
    options.hurry?.removeEventListener('abort', onHurry)
  }
}
