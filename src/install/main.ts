import * as core from '@actions/core'
import { getString } from '../common/inputs.js'
import { installOrun } from './installer.js'

/** The root action: installs orun into the tool cache and puts it on PATH. */
export async function run(): Promise<void> {
  const installed = await installOrun({
    version: getString('version', 'latest'),
    token: getString('token') || undefined,
    downloadUrl: getString('download-url') || undefined
  })
  core.addPath(installed.dir)
  core.setOutput('version', installed.version)
  core.setOutput('path', installed.dir)
  core.info(
    installed.cacheHit
      ? `orun ${installed.version} found in the tool cache at ${installed.dir} (no download).`
      : `orun ${installed.version} downloaded, verified and cached at ${installed.dir}.`
  )
}
