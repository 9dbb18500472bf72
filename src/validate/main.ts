import * as core from '@actions/core'
import { existsSync } from 'node:fs'
import { join, relative } from 'node:path'
import { UserError } from '../common/errors.js'
import { makeTempDir } from '../common/runner.js'
import { resolveOrun } from '../install/installer.js'
import { checkIntent } from '../orun/cli.js'
import { findingsOf, type Finding } from './findings.js'
import { readValidateInputs } from './inputs.js'

/**
 * The validate action: orun's own check of intent.yaml, each error an annotation on the file and
 * line it names. No backend, no artifact, no plan output: a quick pull-request check.
 */
export async function run(): Promise<void> {
  const inputs = readValidateInputs()
  const cwd = inputs.workingDirectory
  if (!existsSync(join(cwd, 'intent.yaml'))) {
    throw new UserError(
      `There is no intent.yaml in ${cwd}. Check out the repository first (actions/checkout) and set 'working-directory' to the folder holding intent.yaml.`
    )
  }
  const orun = await resolveOrun({
    orunPath: inputs.orunPath,
    orunVersion: inputs.orunVersion,
    token: inputs.token,
    downloadUrl: inputs.orunDownloadUrl,
    inputNames: { token: 'github-token' }
  })
  const check = await core.group(`orun validate (orun ${orun.version})`, () =>
    checkIntent(orun.binary, {
      cwd,
      scratchFile: join(makeTempDir('orun-validate-'), 'plan.json')
    })
  )
  if (check.via === 'plan') {
    core.info(
      `orun ${orun.version} has no 'validate' command: the intent was compiled instead, and the plan thrown away.`
    )
  }
  // Annotations name files relative to the repository root, which is the workspace.
  const root = process.env.GITHUB_WORKSPACE || process.cwd()
  const findings = check.valid
    ? []
    : findingsOf(check.output, 'intent.yaml').map(finding => ({
        ...finding,
        file: relative(root, join(cwd, finding.file))
      }))
  core.setOutput('valid', String(check.valid))
  core.setOutput('errors', JSON.stringify(findings))
  if (check.valid) {
    core.info(`${relative(root, join(cwd, 'intent.yaml'))} is valid.`)
    return
  }
  annotate(findings)
  if (!findings.length) {
    throw new UserError(
      `orun rejected the intent in ${cwd} (exit ${check.exitCode}) without an error line this action could read; its output is above.`
    )
  }
  throw new UserError(
    `The intent in ${cwd} is not valid: ${findings.length} error(s), annotated on the lines orun names. Fix intent.yaml and push again.`
  )
}

function annotate(findings: readonly Finding[]): void {
  for (const finding of findings) {
    core.error(finding.message, {
      title: 'orun validate',
      file: finding.file,
      ...(finding.line ? { startLine: finding.line } : {})
    })
  }
}
