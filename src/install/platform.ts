import { UserError } from '../common/errors.js'

/** The operating systems and architectures orun publishes builds for (orun-cli.md, "Releases"). */
export type OrunOs = 'linux' | 'darwin'
export type OrunArch = 'amd64' | 'arm64'

export interface OrunPlatform {
  os: OrunOs
  arch: OrunArch
}

// Explicit tables rather than string tricks, so an unsupported runner fails with a clear message
// instead of downloading an asset name that can never exist.
const osByNodePlatform: Partial<Record<NodeJS.Platform, OrunOs>> = {
  linux: 'linux',
  darwin: 'darwin'
}

const archByNodeArch: Record<string, OrunArch> = {
  x64: 'amd64',
  arm64: 'arm64'
}

/** Maps Node's platform and arch (default: this runner's) to orun's release names. */
export function orunPlatform(
  platform: NodeJS.Platform = process.platform,
  arch: string = process.arch
): OrunPlatform {
  const os = osByNodePlatform[platform]
  if (!os) {
    if (platform === 'win32') {
      throw new UserError(
        'orun publishes no Windows build, so it cannot be installed on this Windows runner. ' +
          'Run this job on an ubuntu or macOS runner instead (for example runs-on: ubuntu-latest).'
      )
    }
    throw new UserError(
      `orun has no build for the operating system '${platform}'. ` +
        `Supported: ${Object.keys(osByNodePlatform).join(', ')}; ` +
        'run this job on an ubuntu or macOS runner.'
    )
  }
  const orunArch = archByNodeArch[arch]
  if (!orunArch) {
    throw new UserError(
      `orun has no build for the CPU architecture '${arch}'. ` +
        `Supported: ${Object.keys(archByNodeArch).join(', ')}; ` +
        'run this job on an x64 or arm64 runner.'
    )
  }
  return { os, arch: orunArch }
}

/** Release asset name; the version carries no leading `v`. */
export function assetName(version: string, os: OrunOs, arch: OrunArch): string {
  return `orun_${version.replace(/^v/, '')}_${os}_${arch}.tar.gz`
}
