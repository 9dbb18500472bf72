import * as core from '@actions/core'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { BackendClient } from '../backend/client.js'
import { BackendError } from '../backend/client.js'
import type { TokenSource } from '../backend/auth.js'
import { connectBackend, explainBackendError, joinRun } from '../backend/session.js'
import { UserError } from '../common/errors.js'
import { spread } from '../common/retry.js'
import { makeTempDir, workspacePath } from '../common/runner.js'
import { resolveOrun } from '../install/installer.js'
import { runSupportsLocalFlag } from '../orun/cli.js'
import { defaultArtifactName, downloadPlanArtifact } from '../plan/handoff.js'
import { parsePlan, selectJobs, type Plan } from '../plan/model.js'
import { acquireJob, type AcquireStats } from './acquire.js'
import { executeJob } from './execute.js'
import { readRunInputs, type RunInputs } from './inputs.js'
import { LogStream } from './logstream.js'
import { Redactor, envValues } from './redact.js'
import { saveInFlight, type InFlight } from './state.js'
import { overallStatus, renderRunSummary, type JobResult } from './summary.js'

/** Lines of output quoted in a failed job's error text. */
const ERROR_TAIL_LINES = 15
const STOP_GRACE_MS = 5_000
const FINAL_LOG_SPREAD_MS = 1_500

class Cancelled extends Error {}

/** The run action: join the run, claim each selected job, wait, execute, stream, report. */
export async function run(): Promise<void> {
  const inputs = readRunInputs()
  const plan = await loadPlan(inputs)
  const targets = inputs.job
    ? [checkedJob(plan, inputs.job)]
    : selectJobs(plan, inputs.environments, inputs.components).map(j => j.id)
  if (!targets.length) {
    throw new UserError(
      `No job of plan ${plan.id} matches environments '${inputs.environments.join(',')}' and components '${inputs.components.join(',')}' together.`
    )
  }
  const orun = await resolveOrun({
    orunPath: inputs.orunPath,
    orunVersion: inputs.orunVersion,
    token: inputs.githubToken,
    downloadUrl: inputs.orunDownloadUrl,
    inputNames: { token: 'github-token' }
  })
  const forceLocal = await runSupportsLocalFlag(orun.binary)
  if (!forceLocal) {
    core.warning(
      `orun ${orun.version} has no 'run --local' flag, so remote state is turned off only through ORUN_REMOTE_STATE=false. ` +
        "If intent.yaml sets execution.state.mode: remote, orun would coordinate by itself and wait forever: use a newer orun ('orun-version')."
    )
  }
  const { client, tokens } = connectBackend(inputs)
  await checkRunMatchesPlan(client, inputs.runId, plan)
  const runnerId = [
    process.env.RUNNER_NAME || hostname(),
    process.env.GITHUB_RUN_ATTEMPT || '1',
    process.pid,
    randomBytes(3).toString('hex')
  ].join('-')
  core.setOutput('run-id', inputs.runId)
  core.info(
    `Runner ${runnerId}: ${targets.length} job(s) of run ${inputs.runId}: ${targets.join(', ')}.`
  )

  const cancel = new AbortController()
  const onSignal = (signal: NodeJS.Signals) => {
    core.warning(`Received ${signal}: stopping and reporting the job as cancelled.`)
    cancel.abort()
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  let joined = false
  const tempDir = makeTempDir('orun-run-')
  const inFlight: InFlight = {
    backendUrl: inputs.backendUrl,
    audience: inputs.audience,
    runId: inputs.runId,
    runnerId,
    jobs: []
  }
  const results: JobResult[] = []
  try {
    for (const jobId of targets) {
      if (cancel.signal.aborted) break
      results.push(
        await runOne({
          jobId,
          inputs,
          plan,
          client,
          tokens,
          runnerId,
          tempDir,
          inFlight,
          cancel: cancel.signal,
          binary: orun.binary,
          forceLocal,
          ensureRun: async () => {
            if (joined) return
            await joinRun(client, plan, inputs.runId)
            joined = true
          }
        })
      )
    }
  } catch (error) {
    if (!(error instanceof Cancelled)) throw explainBackendError(error, `running ${inputs.runId}`)
  } finally {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }

  const status = cancel.signal.aborted ? 'failed' : overallStatus(results)
  core.setOutput('status', status)
  core.setOutput(
    'job-results',
    JSON.stringify(
      Object.fromEntries(
        results.map(r => [
          r.jobId,
          {
            status: r.status,
            duration: Math.round(r.durationMs / 1000),
            attempts: r.attempts,
            tookOver: r.tookOver
          }
        ])
      )
    )
  )
  await core.summary
    .addRaw(
      renderRunSummary(inputs.runId, runnerId, results, {
        sent: client.stats.requests,
        rateLimited: client.stats.rateLimited
      })
    )
    .write()
  core.info(
    `Backend requests: ${client.stats.requests} (${client.stats.rateLimited} rate-limited), tokens minted: ${tokens.mints}.`
  )

  if (cancel.signal.aborted)
    throw new UserError('The run was cancelled; claimed jobs were reported as failed (cancelled).')
  const bad = results.filter(r => r.status === 'failed' || r.status === 'blocked')
  if (bad.length)
    throw new UserError(bad.map(r => `${r.jobId}: ${r.status}: ${r.detail ?? ''}`).join('\n'))
}

interface RunOneContext {
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
  forceLocal: boolean
  ensureRun: () => Promise<void>
}

async function runOne(ctx: RunOneContext): Promise<JobResult> {
  const { jobId, inputs, client } = ctx
  const stats: AcquireStats = { waitedMs: 0, polls: 0 }
  const acquired = await acquireJob(
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
    redactor: new Redactor(envValues(inputs.redactEnv), () => ctx.tokens.issued),
    intervalMs: inputs.logUploadIntervalMs,
    spoolFile,
    warn: message => core.warning(message)
  })
  core.startGroup(`orun run ${jobId}`)
  let execution
  try {
    execution = await executeJob({
      client,
      plan: ctx.plan,
      jobId,
      runId: inputs.runId,
      runnerId: ctx.runnerId,
      binary: ctx.binary,
      forceLocal: ctx.forceLocal,
      workingDirectory: inputs.workingDirectory,
      extraArgs: inputs.args,
      tempDir: ctx.tempDir,
      heartbeatIntervalMs: inputs.heartbeatIntervalMs,
      stopGraceMs: STOP_GRACE_MS,
      log,
      cancel: ctx.cancel
    })
  } finally {
    core.endGroup()
  }
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
        ? `orun exited with code ${execution.exitCode ?? 'none (killed)'}; last output:\n${log.tail(ERROR_TAIL_LINES)}`
        : undefined
  // The result first: dependents wait on it, while the final log only has readers.
  const reported = await report(client, inputs.runId, jobId, ctx.runnerId, error)
  // Every runner of a DAG level reports at about the same moment; spreading the final
  // uploads keeps them from crowding out the results and claims that gate the next level.
  await new Promise(resolve => setTimeout(resolve, spread(FINAL_LOG_SPREAD_MS, 1)))
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

/**
 * A run id made by the plan action ends with its plan id, so a mismatch is seen
 * without a request. A custom run id costs one read: jobs of another plan that
 * happen to share ids must not run inside that plan's run.
 */
async function checkRunMatchesPlan(
  client: BackendClient,
  runId: string,
  plan: Plan
): Promise<void> {
  const conflict = (other: string) =>
    new UserError(
      `Run ${runId} is already used by a different plan (${other}); this job's plan is ${plan.id}. Pass the plan job's 'run-id' and 'plan-id' outputs unchanged, or choose a new 'run-id'.`
    )
  const derived = /^gha-\d+-\d+-([0-9a-f]{12})$/.exec(runId)?.[1]
  if (derived) {
    if (derived !== plan.id) throw conflict(derived)
    return
  }
  try {
    const run = await client.getRun(runId)
    if (run.planChecksum !== plan.id) throw conflict(run.planChecksum)
  } catch (error) {
    // Not created yet: the first claim creates it with this plan.
    if (!(error instanceof BackendError && error.status === 404))
      throw explainBackendError(error, `reading run ${runId}`)
  }
}

function checkedJob(plan: Plan, jobId: string): string {
  if (plan.byId.has(jobId)) return jobId
  const sample = [...plan.byId.keys()].slice(0, 5).join(', ')
  throw new UserError(
    `Input 'job' is '${jobId}', which is not in plan ${plan.id} (jobs: ${sample}${plan.byId.size > 5 ? ', ...' : ''}). Use job: \${{ matrix.job }} with the plan job's 'jobs' output.`
  )
}

async function loadPlan(inputs: RunInputs): Promise<Plan> {
  const file = inputs.planFile
    ? workspacePath(inputs.planFile)
    : await downloadPlanArtifact(
        inputs.artifactName ?? defaultArtifactName(inputs.runId),
        makeTempDir('orun-plan-')
      )
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new UserError(
      `Input 'plan-file' points to ${file}, which cannot be read (${(error as Error).message}).`
    )
  }
  const plan = parsePlan(text, file)
  if (inputs.planId && inputs.planId !== plan.id) {
    throw new UserError(
      `Input 'plan-id' is '${inputs.planId}', but the plan file ${file} has plan id '${plan.id}'. Pass the plan job's 'plan-id' output together with its plan.`
    )
  }
  return plan
}

/** A failed job in a run of an earlier attempt stays failed: only "Re-run all jobs" gets a fresh run id. */
function rerunHint(runId: string): string {
  const attempt = /^gha-\d+-(\d+)-/.exec(runId)?.[1]
  const current = process.env.GITHUB_RUN_ATTEMPT
  return attempt && current && Number(current) > Number(attempt)
    ? ` (this is attempt ${current} re-using run id ${runId} from attempt ${attempt}: use "Re-run all jobs" so the plan job makes a fresh run id)`
    : ''
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Cancelled())
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(new Cancelled())
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
