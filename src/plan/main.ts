import * as core from '@actions/core'
import { copyFileSync, existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { UserError } from '../common/errors.js'
import { currentAttempt, customRunId } from '../common/attempt.js'
import { defaultRunId, makeTempDir, workspacePath } from '../common/runner.js'
import { resolveOrun } from '../install/installer.js'
import { compilePlan } from '../orun/cli.js'
import { hasMergeBase, isShallowRepository } from '../common/git.js'
import { connectBackend, joinRun } from '../backend/session.js'
import { resolveBackendUrl } from '../backend/url.js'
import { describeProbe, probeRateLimit, refillWaitMs } from '../backend/limit-probe.js'
import { writeLimitHint } from '../common/limit-hint.js'
import { readPlanInputs, type PlanInputs } from './inputs.js'
import { MAX_MATRIX_JOBS, matrixEntries, parsePlan } from './model.js'
import { renderNothingToPlanSummary, renderPlanSummary } from './summary.js'
import { checkOutputSizes, fitSummary } from './output-limits.js'
import { chooseWorkers, renderWorkersSummary, workerIndexes } from './workers.js'
import { PLAN_ARTIFACT_FILE, defaultArtifactName, uploadPlanArtifact } from './handoff.js'

/** The plan action: compile once, validate, emit the matrix, hand the plan to the runners. */
export async function run(): Promise<void> {
  const inputs = readPlanInputs()
  const backendUrl = resolveBackendUrl(inputs.backendUrl, false)
  const produced = await producePlanFile(inputs)
  if ('orunSays' in produced) return nothingToPlan(inputs, produced.orunSays)
  const planFile = produced.file
  // Errors name the file the user gave, not its copy under RUNNER_TEMP.
  const planSource = inputs.planFile ? workspacePath(inputs.planFile) : planFile
  const plan = parsePlan(readFileSync(planFile, 'utf8'), planSource, { orunSafeNames: true })
  if (plan.order.length > MAX_MATRIX_JOBS) {
    // Not an error: the outputs stay complete for whatever uses them other than one matrix
    // over `jobs` (an environment fan-out, other modes); only that matrix would be refused.
    core.warning(
      `The plan has ${plan.order.length} jobs, but GitHub Actions accepts at most ${MAX_MATRIX_JOBS} jobs in one matrix, ` +
        "so a matrix over the 'jobs' output fails. Split it with 'environments'/'components' (one plan step and matrix each)."
    )
  }
  // A custom id gets a per-attempt suffix from attempt 2 on, so "Re-run all jobs" starts a
  // fresh run and the run action can tell which attempt ran the plan job.
  const runId = inputs.runId ? customRunId(inputs.runId, currentAttempt()) : defaultRunId(plan.id)
  const artifactName = inputs.artifactName ?? defaultArtifactName(runId)
  const jobs = matrixEntries(plan)
  // Before the artifact and the run exist: an oversized plan changes nothing.
  checkOutputSizes({
    jobs: JSON.stringify(jobs),
    'job-ids': JSON.stringify(jobs.map(e => e.job)),
    matrix: JSON.stringify({ include: jobs }),
    'run-id': runId
  })

  if (!jobs.length) core.notice('The plan has no jobs: nothing to run. The jobs output is [].')
  if (backendUrl && jobs.length) {
    // Creating the run here makes a misconfigured backend or auth fail once, in this job.
    const { client, tokens } = connectBackend({
      backendUrl,
      audience: inputs.audience,
      token: inputs.backendToken
    })
    await joinRun(client, plan, runId)
    // The runners find what the probe learned beside the plan in the artifact.
    const probe = await probeRateLimit({ backendUrl, tokens }, runId)
    core.info(describeProbe(probe))
    if (probe.hint) {
      const refill = refillWaitMs(probe)
      writeLimitHint(dirname(planFile), {
        ...probe.hint,
        ...(refill ? { refilledAt: Date.now() + refill } : {})
      })
    }
  }
  if (inputs.upload && jobs.length)
    await uploadPlanArtifact(planFile, artifactName, {
      attempt: currentAttempt(),
      retentionDays: inputs.artifactRetentionDays
    })

  core.setOutput('plan-id', plan.id)
  core.setOutput('run-id', runId)
  core.setOutput('jobs', JSON.stringify(jobs))
  core.setOutput('job-ids', JSON.stringify(jobs.map(entry => entry.job)))
  core.setOutput('job-count', String(jobs.length))
  core.setOutput('matrix', JSON.stringify({ include: jobs }))
  core.setOutput('plan-file', planFile)
  core.setOutput('artifact-name', inputs.upload && jobs.length ? artifactName : '')
  const workers = chooseWorkers(plan, inputs.workers)
  core.setOutput('workers', JSON.stringify(workerIndexes(workers.count)))
  core.info(`Plan ${plan.id}: ${jobs.length} job(s), run id ${runId}.`)

  await core.summary
    .addRaw(
      fitSummary(
        renderPlanSummary({
          plan,
          runId,
          planFile,
          artifactName: inputs.upload && jobs.length ? artifactName : undefined
        })
      )
    )
    .addRaw(renderWorkersSummary(workers))
    .write()
}

/**
 * `orun plan --from-ci` found no trigger binding for this event and wrote no plan: the outputs of
 * an empty plan (no plan id: there is no plan), so the matrix job is skipped like for zero jobs.
 */
async function nothingToPlan(inputs: PlanInputs, orunSays: string): Promise<void> {
  core.notice(`orun found nothing to plan for this event: "${orunSays}". The jobs output is [].`)
  core.setOutput('plan-id', '')
  core.setOutput('run-id', inputs.runId ?? '')
  core.setOutput('jobs', '[]')
  core.setOutput('job-ids', '[]')
  core.setOutput('job-count', '0')
  core.setOutput('matrix', JSON.stringify({ include: [] }))
  core.setOutput('plan-file', '')
  core.setOutput('artifact-name', '')
  core.setOutput('workers', '[]')
  await core.summary.addRaw(renderNothingToPlanSummary(orunSays)).write()
}

/**
 * orun's `--changed` swallows git errors, so a shallow checkout (actions/checkout's default
 * fetch-depth: 1) plans zero jobs and the workflow passes having run nothing. That is worth
 * failing for: the fix is one line. A shallow clone that still holds the merge base of explicit
 * refs (fetch-depth: 2 with base HEAD~1) works and is let through. With only `from-ci`, orun may
 * or may not turn `--changed` on (the binding's plan.scope), so that is a warning.
 */
async function checkGitHistory(inputs: PlanInputs): Promise<void> {
  if (!inputs.changed && !inputs.fromCi) return
  if ((await isShallowRepository(inputs.workingDirectory)) !== true) return
  const fix = "Fetch the whole history: 'actions/checkout' with 'fetch-depth: 0'."
  if (!inputs.changed) {
    core.warning(
      `${inputs.workingDirectory} is a shallow git checkout. If a trigger binding of 'from-ci' scopes the plan to changed components, ` +
        `orun finds no changes there and plans zero jobs. ${fix}`
    )
    return
  }
  if (
    inputs.base &&
    (await hasMergeBase(inputs.workingDirectory, inputs.base, inputs.head ?? 'HEAD'))
  ) {
    return
  }
  throw new UserError(
    `Input 'changed: true' needs git history, but ${inputs.workingDirectory} is a shallow checkout` +
      (inputs.base
        ? ` without the merge base of '${inputs.base}' and '${inputs.head ?? 'HEAD'}'`
        : '') +
      `: orun would find no changes and plan zero jobs. ${fix}`
  )
}

/** Compiles the plan (or copies the given one) to RUNNER_TEMP/.../plan.json, outside the workspace. */
async function producePlanFile(
  inputs: PlanInputs
): Promise<{ file: string } | { orunSays: string }> {
  const output = join(makeTempDir('orun-plan-'), PLAN_ARTIFACT_FILE)
  if (inputs.planFile) {
    const source = workspacePath(inputs.planFile)
    try {
      copyFileSync(source, output)
    } catch (error) {
      throw new UserError(
        `Input 'plan-file' points to ${source}, which cannot be read (${(error as Error).message}).`
      )
    }
    return { file: output }
  }
  // Checked before installing orun, so a wrong path fails at once, without a download.
  if (!existsSync(inputs.workingDirectory)) {
    throw new UserError(
      `Input 'working-directory' is ${inputs.workingDirectory}, which does not exist. Check out the repository first (actions/checkout) or fix the path.`
    )
  }
  await checkGitHistory(inputs)
  const orun = await resolveOrun({
    orunPath: inputs.orunPath,
    orunVersion: inputs.orunVersion,
    token: inputs.token,
    downloadUrl: inputs.orunDownloadUrl,
    inputNames: { token: 'github-token' }
  })
  const compiled = await core.group(`orun plan (orun ${orun.version})`, () =>
    compilePlan(orun.binary, {
      cwd: inputs.workingDirectory,
      output,
      name: inputs.name,
      all: inputs.all,
      environments: inputs.environments,
      components: inputs.components,
      changed: inputs.changed,
      base: inputs.base,
      head: inputs.head,
      fromCi: inputs.fromCi,
      extraArgs: inputs.args
    })
  )
  return compiled.planned ? { file: output } : { orunSays: compiled.orunSays }
}
