import * as core from '@actions/core'
import { copyFileSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { UserError } from '../common/errors.js'
import { defaultRunId, makeTempDir, workspacePath } from '../common/runner.js'
import { resolveOrun } from '../install/installer.js'
import { compilePlan } from '../orun/cli.js'
import { connectBackend, joinRun } from '../backend/session.js'
import { resolveBackendUrl } from '../backend/url.js'
import { readPlanInputs, type PlanInputs } from './inputs.js'
import { MAX_MATRIX_JOBS, matrixEntries, parsePlan } from './model.js'
import { renderPlanSummary } from './summary.js'
import { chooseWorkers, renderWorkersSummary, workerIndexes } from './workers.js'
import { PLAN_ARTIFACT_FILE, defaultArtifactName, uploadPlanArtifact } from './handoff.js'

/** The plan action: compile once, validate, emit the matrix, hand the plan to the runners. */
export async function run(): Promise<void> {
  const inputs = readPlanInputs()
  const backendUrl = resolveBackendUrl(inputs.backendUrl, false)
  const planFile = await producePlanFile(inputs)
  // Errors name the file the user gave, not its copy under RUNNER_TEMP.
  const planSource = inputs.planFile ? workspacePath(inputs.planFile) : planFile
  const plan = parsePlan(readFileSync(planFile, 'utf8'), planSource)
  if (plan.order.length > MAX_MATRIX_JOBS) {
    throw new UserError(
      `The plan has ${plan.order.length} jobs, but GitHub Actions accepts at most ${MAX_MATRIX_JOBS} jobs in one matrix. ` +
        "Split it into several plan steps scoped with 'environments' or 'components' (one matrix each), or compile with 'changed: true'."
    )
  }
  const runId = inputs.runId ?? defaultRunId(plan.id)
  const artifactName = inputs.artifactName ?? defaultArtifactName(runId)
  const jobs = matrixEntries(plan)

  if (!jobs.length) core.notice('The plan has no jobs: nothing to run. The jobs output is [].')
  if (inputs.upload && jobs.length) await uploadPlanArtifact(planFile, artifactName)
  if (backendUrl && jobs.length) {
    // Creating the run here makes a misconfigured backend or auth fail once, in this job.
    const { client } = connectBackend({
      backendUrl,
      audience: inputs.audience,
      token: inputs.backendToken
    })
    await joinRun(client, plan, runId)
  }

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
      renderPlanSummary({
        plan,
        runId,
        planFile,
        artifactName: inputs.upload && jobs.length ? artifactName : undefined
      })
    )
    .addRaw(renderWorkersSummary(workers))
    .write()
}

/** Compiles the plan (or copies the given one) to RUNNER_TEMP/.../plan.json, outside the workspace. */
async function producePlanFile(inputs: PlanInputs): Promise<string> {
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
    return output
  }
  // Checked before installing orun, so a wrong path fails at once, without a download.
  if (!existsSync(inputs.workingDirectory)) {
    throw new UserError(
      `Input 'working-directory' is ${inputs.workingDirectory}, which does not exist. Check out the repository first (actions/checkout) or fix the path.`
    )
  }
  const orun = await resolveOrun({
    orunPath: inputs.orunPath,
    orunVersion: inputs.orunVersion,
    token: inputs.token,
    downloadUrl: inputs.orunDownloadUrl,
    inputNames: { token: 'github-token' }
  })
  await core.group(`orun plan (orun ${orun.version})`, () =>
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
      extraArgs: inputs.args
    })
  )
  return output
}
