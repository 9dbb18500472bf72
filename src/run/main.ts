import * as core from '@actions/core'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { isCancelledCall } from '../backend/client.js'
import { checkNotDropped } from '../backend/dropped-run.js'
import { connectBackend, explainBackendError, joinRun, shortId } from '../backend/session.js'
import { describeHint, waitForRefillMs } from '../common/limit-hint.js'
import { currentAttempt } from '../common/attempt.js'
import { UserError } from '../common/errors.js'
import { RERUN_AFTER_RUNNER_LOST } from '../common/runner-lost.js'
import { commandSafe, inline } from '../common/escape.js'
import { makeTempDir } from '../common/runner.js'
import { resolveOrun } from '../install/installer.js'
import { probeRunCapabilities } from '../orun/cli.js'
import { Cancelled, abortableSleep } from './cancel.js'
import { readRunInputs } from './inputs.js'
import { runJob } from './job.js'
import { LearnedLimit } from './pace.js'
import { runPool } from './pool.js'
import { checkRunMatchesPlan, loadHandoff, selectTargets } from './plan-source.js'
import { prepareRerun } from './rerun.js'
import { checkOrunSafeNames } from '../plan/model.js'
import type { InFlight } from './state.js'
import { overallStatus, renderRunSummary, type JobResult } from './summary.js'
import type { Carrier } from './rerun.js'
import type { Plan } from '../plan/model.js'
import { writeResultsRecord, type RecordedJob } from '../common/results-record.js'

/** The run action: join the run, claim each selected job, wait, execute, stream, report. */
export async function run(): Promise<void> {
  const inputs = readRunInputs()
  const { plan, limitHint } = await loadHandoff(inputs)
  const targets = selectTargets(plan, inputs)
  checkOrunSafeNames(
    targets.map(id => plan.byId.get(id)!),
    inputs.planFile ?? 'from the plan artifact'
  )
  const orun = await resolveOrun({
    orunPath: inputs.orunPath,
    orunVersion: inputs.orunVersion,
    token: inputs.githubToken,
    downloadUrl: inputs.orunDownloadUrl,
    inputNames: { token: 'github-token' }
  })
  const capabilities = await probeRunCapabilities(orun.binary)
  if (!capabilities.local) {
    core.warning(
      `orun ${orun.version} has no 'run --local' flag, so remote state is turned off only through ORUN_REMOTE_STATE=false. ` +
        "If intent.yaml sets execution.state.mode: remote, orun would coordinate by itself and wait forever: use a newer orun ('orun-version')."
    )
  }
  // The first SIGINT/SIGTERM stops the job and reports it cancelled; a second one (GitHub
  // sends SIGTERM 7.5 s after SIGINT, then kills) cuts every remaining wait short.
  const cancel = new AbortController()
  const hurry = new AbortController()
  const onSignal = (signal: NodeJS.Signals) => {
    if (!cancel.signal.aborted) {
      core.warning(`Received ${signal}: stopping and reporting the job as cancelled.`)
      cancel.abort()
    } else if (!hurry.signal.aborted) {
      core.warning(
        `Received ${signal} again: ending now; what is not reported yet is left to the post step.`
      )
      hurry.abort()
    }
  }
  const stopListening = () => {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  core.info(describeHint(limitHint))
  // The plan step's probe spent the tight bucket a moment ago: its first requests wait for it.
  const refill = waitForRefillMs(limitHint, Date.now())
  if (refill) {
    core.info(
      `Waiting ${(refill / 1000).toFixed(1)} s: the plan step's probe of the rate limit spent the bucket, which is refilling.`
    )
    // A cancel ends the wait; what follows handles it as a cancel during start-up.
    await abortableSleep(refill, cancel.signal).catch(() => {})
  }
  const { client, tokens } = connectBackend({ ...inputs, signal: cancel.signal })
  const runnerId = [
    process.env.RUNNER_NAME || hostname(),
    process.env.GITHUB_RUN_ATTEMPT || '1',
    process.pid,
    randomBytes(3).toString('hex')
  ].join('-')
  // A run id of an earlier attempt (a re-run): this attempt works in a run of its own.
  const rerun = await prepareRerun({
    client,
    plan,
    runId: inputs.runId,
    attempt: currentAttempt(),
    workflowRun: process.env.GITHUB_RUN_ID,
    // A pool worker is started for no job in particular: it runs what did not succeed before.
    targets: inputs.worker === undefined ? targets : [],
    runnerId,
    log: message => core.info(message),
    warn: message => core.warning(message),
    cancel: cancel.signal,
    limit: new LearnedLimit(
      () => client.stats.rateLimited,
      () => client.stats.rateLimitBurst,
      limitHint
    )
  })
  if (rerun.carrier) inputs.runId = rerun.runId
  else {
    try {
      await checkRunMatchesPlan(client, inputs.runId, plan)
    } catch (error) {
      stopListening()
      throw error
    }
  }
  core.setOutput('run-id', inputs.runId)
  core.info(
    commandSafe(
      `Runner ${runnerId}: ${targets.length} job(s) of run ${inputs.runId}: ${targets.map(inline).join(', ')}.`
    )
  )

  let joined = rerun.carrier !== null
  const tempDir = makeTempDir('orun-run-')
  const inFlight: InFlight = {
    backendUrl: inputs.backendUrl,
    audience: inputs.audience,
    runId: inputs.runId,
    runnerId,
    jobs: []
  }
  const results: JobResult[] = []
  let failure: unknown
  let current: string | undefined
  let completed = false
  let poolExit: string | undefined
  // What every job of this runner shares; the run is created or joined at most once.
  const jobContext = {
    inputs,
    plan,
    client,
    tokens,
    runnerId,
    tempDir,
    inFlight,
    cancel: cancel.signal,
    hurry: hurry.signal,
    binary: orun.binary,
    capabilities,
    limitHint,
    // Called when the backend answered "run unknown": a run it dropped to its copy must not be
    // created again (that would start it over), so a read comes first.
    ensureRun: async () => {
      if (joined) return
      await checkNotDropped(client, inputs.runId)
      await joinRun(client, plan, inputs.runId)
      joined = true
    }
  }
  try {
    await rerun.carrier?.start()
    if (inputs.worker !== undefined) {
      poolExit = await runPool(
        {
          ...jobContext,
          log: message => core.info(commandSafe(message)),
          worker: inputs.worker,
          // Earlier successes are carried over (by whichever runner made the run), never run.
          targets: targets.filter(id => !rerun.carrier?.carries(id)),
          sleep: ms => abortableSleep(ms, cancel.signal),
          now: Date.now
        },
        results
      )
      core.info(
        commandSafe(`Worker ${inputs.worker} ran ${results.length} job(s) and leaves: ${poolExit}.`)
      )
    }
    for (const jobId of inputs.worker === undefined ? targets : []) {
      current = jobId
      if (cancel.signal.aborted) break
      results.push(await runJob({ ...jobContext, jobId }))
    }
    completed = true
  } catch (error) {
    // Anything else still ends with the outputs below: a step without `status` tells nothing.
    if (!(error instanceof Cancelled) && !isCancelledCall(error))
      failure = explainBackendError(
        error,
        current
          ? `running ${shortId(current)} of run ${shortId(inputs.runId)}`
          : `running ${shortId(inputs.runId)}`,
        { runId: inputs.runId, jobId: current }
      )
  } finally {
    stopListening()
    await rerun.carrier?.finish(completed && !cancel.signal.aborted)
  }
  rerun.carrier?.annotate(results)
  const carried = rerun.carrier?.carried ?? []

  // A cancel after every job was reported (during the final log upload, say) changes no result.
  // A worker is done when it left by its exit rule; a runner of named jobs when each has a result.
  const incomplete =
    inputs.worker === undefined ? results.length < targets.length : poolExit === undefined
  const status =
    failure || (cancel.signal.aborted && incomplete) ? 'failed' : overallStatus(results)
  core.setOutput('status', status)
  core.setOutput(
    'job-results',
    JSON.stringify(
      Object.fromEntries(
        [...results, ...carried].map(r => [
          r.jobId,
          {
            status: r.status,
            duration: Math.round(r.durationMs / 1000),
            attempts: r.attempts,
            tookOver: r.tookOver,
            ...(r.carriedFrom ? { carriedFrom: r.carriedFrom } : {}),
            ...(r.status === 'failed' || r.status === 'blocked' ? { detail: r.detail ?? '' } : {}),
            ...(r.lostRunners ? { runnerLost: r.lostRunners } : {})
          }
        ])
      )
    )
  )
  await core.summary
    .addRaw(
      renderRunSummary(inputs.runId, runnerId, [...results, ...carried], {
        sent: client.stats.requests,
        rateLimited: client.stats.rateLimited
      })
    )
    .addRaw(
      poolExit
        ? `\nPool worker ${inputs.worker}: ran ${results.length} job(s), then left: ${poolExit}.\n`
        : ''
    )
    .write()
  core.info(
    `Backend requests: ${client.stats.requests} (${client.stats.rateLimited} rate-limited), tokens minted: ${tokens.mints}.`
  )

  await keepResultsRecord(inputs.runId, plan, runnerId, results, rerun.carrier)

  if (failure) throw failure
  // A cancel that came after every job was reported changed nothing and fails nothing.
  const cancelledJob = results.some(r => r.status === 'failed' && r.detail?.startsWith('cancelled'))
  if (cancel.signal.aborted && (incomplete || cancelledJob)) {
    const pending = inFlight.jobs.filter(job => job.outcome && !job.reported).length
    throw new UserError(
      pending
        ? 'The run was cancelled; the post step reports the claimed job(s) as failed (cancelled).'
        : 'The run was cancelled; claimed jobs were reported as failed (cancelled).'
    )
  }
  const bad = results.filter(r => r.status === 'failed' || r.status === 'blocked')
  if (bad.length)
    throw new UserError(
      [
        ...bad.map(r => `${inline(r.jobId)}: ${r.status}: ${r.detail ?? ''}`),
        ...(bad.some(r => r.lostRunners) ? [RERUN_AFTER_RUNNER_LOST] : [])
      ].join('\n')
    )
}

/**
 * Keeps what this runner did on GitHub's side (src/common/results-record.ts): the jobs it
 * executed, blocked or carried. Jobs another runner executed are in that runner's record.
 */
async function keepResultsRecord(
  runId: string,
  plan: Plan,
  runnerId: string,
  results: readonly JobResult[],
  carrier: Carrier | null
): Promise<void> {
  const attempt = currentAttempt()
  const jobs: RecordedJob[] = []
  for (const r of results) {
    const executed = r.endedAt !== undefined && (r.status === 'success' || r.status === 'failed')
    if (!executed && r.status !== 'blocked') continue
    jobs.push({
      jobId: r.jobId,
      status: r.status === 'success' || r.status === 'failed' ? r.status : 'blocked',
      attempt,
      runner: runnerId,
      ...(r.endedAt !== undefined
        ? {
            startedAt: new Date(r.endedAt - r.durationMs).toISOString(),
            endedAt: new Date(r.endedAt).toISOString()
          }
        : {}),
      ...(r.detail && r.status !== 'success' ? { error: r.detail } : {})
    })
  }
  for (const r of carrier?.carried ?? []) {
    const origin = carrier!.origins.get(r.jobId)
    jobs.push({
      jobId: r.jobId,
      status: 'carried',
      attempt: origin?.attempt ?? r.carriedFrom ?? attempt,
      runner: origin?.runner ?? 'unknown'
    })
  }
  const name = await writeResultsRecord(
    { version: 1, runId, planId: plan.id, attempt, runner: runnerId, jobs },
    plan,
    message => core.warning(message)
  )
  if (name) core.info(`Results record kept as artifact '${name}'.`)
}
