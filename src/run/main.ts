import * as core from '@actions/core'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { connectBackend, explainBackendError, joinRun } from '../backend/session.js'
import { UserError } from '../common/errors.js'
import { makeTempDir } from '../common/runner.js'
import { resolveOrun } from '../install/installer.js'
import { probeRunCapabilities } from '../orun/cli.js'
import { Cancelled, abortableSleep } from './cancel.js'
import { readRunInputs } from './inputs.js'
import { runJob } from './job.js'
import { runPool } from './pool.js'
import { checkRunMatchesPlan, loadPlan, selectTargets } from './plan-source.js'
import type { InFlight } from './state.js'
import { overallStatus, renderRunSummary, type JobResult } from './summary.js'

/** The run action: join the run, claim each selected job, wait, execute, stream, report. */
export async function run(): Promise<void> {
  const inputs = readRunInputs()
  const plan = await loadPlan(inputs)
  const targets = selectTargets(plan, inputs)
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
  let poolExit: string | undefined
  try {
    if (inputs.worker !== undefined) {
      poolExit = await runPool(
        {
          inputs,
          plan,
          client,
          tokens,
          runnerId,
          tempDir,
          inFlight,
          cancel: cancel.signal,
          binary: orun.binary,
          capabilities,
          ensureRun: async () => {
            if (joined) return
            await joinRun(client, plan, inputs.runId)
            joined = true
          },
          log: message => core.info(message),
          worker: inputs.worker,
          targets,
          sleep: ms => abortableSleep(ms, cancel.signal),
          now: Date.now
        },
        results
      )
      core.info(`Worker ${inputs.worker} ran ${results.length} job(s) and leaves: ${poolExit}.`)
    }
    for (const jobId of inputs.worker === undefined ? targets : []) {
      if (cancel.signal.aborted) break
      results.push(
        await runJob({
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
          capabilities,
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
    .addRaw(
      poolExit
        ? `\nPool worker ${inputs.worker}: ran ${results.length} job(s), then left: ${poolExit}.\n`
        : ''
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
