import * as core from '@actions/core'
import { HttpClient } from '@actions/http-client'
import * as tc from '@actions/tool-cache'
import { createHash } from 'node:crypto'
import { constants, createReadStream, promises as fs } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import * as path from 'node:path'
import * as semver from 'semver'
import { UserError, errorMessage } from '../common/errors.js'
import { withRetry } from '../common/retry.js'
import { getOrunVersion } from '../orun/cli.js'
import { assetName, orunPlatform } from './platform.js'

const toolName = 'orun'
const binaryName = 'orun'
const releasesPage = 'https://github.com/sourceplane/orun/releases'
const defaultDownloadBase = 'https://github.com/sourceplane/orun/releases/download'
const latestReleasePath = '/repos/sourceplane/orun/releases/latest'

/** Input names used in error messages, so each message names the input the user has to change. */
export interface InstallInputNames {
  version: string
  token: string
  downloadUrl: string
}

const rootActionInputs: InstallInputNames = {
  version: 'version',
  token: 'token',
  downloadUrl: 'download-url'
}

const orunSourceInputs: InstallInputNames = {
  version: 'orun-version',
  token: 'token',
  downloadUrl: 'orun-download-url'
}

export interface InstallOptions {
  /** 'latest', 'X.Y.Z' or 'vX.Y.Z'. */
  version: string
  token?: string
  /** A mirror laid out like the GitHub releases: `<downloadUrl>/vX.Y.Z/<asset>`. */
  downloadUrl?: string
  /** Default: GITHUB_API_URL, else https://api.github.com. Only used to resolve 'latest'. */
  apiUrl?: string
  platform?: NodeJS.Platform
  arch?: string
  /** Defaults to the root action's inputs (version, token, download-url). */
  inputNames?: Partial<InstallInputNames>
}

export interface InstalledOrun {
  /** X.Y.Z, without the leading v. */
  version: string
  /** Tool-cache folder holding the binary; this is what goes on PATH. */
  dir: string
  binary: string
  cacheHit: boolean
}

/**
 * Installs orun into the runner's tool cache: a cached copy is used without any download;
 * otherwise the release asset is downloaded, verified against checksums.txt, extracted,
 * checked to report the requested version, and only then cached.
 */
export async function installOrun(options: InstallOptions): Promise<InstalledOrun> {
  const inputs = { ...rootActionInputs, ...options.inputNames }
  const nodeArch = options.arch ?? process.arch
  const target = orunPlatform(options.platform ?? process.platform, nodeArch)
  const requested = parseRequestedVersion(options.version, inputs.version)
  const token = options.token?.trim() || undefined

  const version =
    requested === 'latest'
      ? await resolveLatestVersion(
          options.apiUrl?.trim() || process.env.GITHUB_API_URL || 'https://api.github.com',
          token,
          inputs
        )
      : requested

  // The tool cache is keyed by Node's arch name (x64, arm64), like other tools on hosted runners.
  const cached = tc.find(toolName, version, nodeArch)
  if (cached) {
    const binary = path.join(cached, binaryName)
    if (await isFile(binary)) return { version, dir: cached, binary, cacheHit: true }
    core.warning(`The tool cache entry ${cached} holds no ${binaryName} binary; reinstalling.`)
  }

  const base = downloadBase(version, options.downloadUrl, inputs)
  const asset = assetName(version, target.os, target.arch)
  const tempRoot = process.env.RUNNER_TEMP || tmpdir()
  await fs.mkdir(tempRoot, { recursive: true })
  const workDir = await fs.mkdtemp(path.join(tempRoot, 'orun-install-'))
  try {
    const checksumsUrl = `${base}checksums.txt`
    core.info(`Downloading ${checksumsUrl}`)
    const checksumsFile = await downloadOrExplain(
      checksumsUrl,
      path.join(workDir, 'checksums.txt'),
      token,
      status =>
        status === 404
          ? `orun v${version} was not found: ${checksumsUrl} answered 404. ` +
            `See ${releasesPage} for the published versions and set the '${inputs.version}' ` +
            `input to one of them (or to latest)` +
            (options.downloadUrl
              ? `, or check that the mirror given in '${inputs.downloadUrl}' holds v${version}.`
              : '.')
          : undefined,
      inputs
    )

    const assetUrl = `${base}${asset}`
    core.info(`Downloading ${assetUrl}`)
    const archive = await downloadOrExplain(
      assetUrl,
      path.join(workDir, asset),
      token,
      status =>
        status === 404
          ? `orun v${version} has no asset ${asset} (${assetUrl} answered 404). ` +
            `Check ${releasesPage}/tag/v${version} for the assets of this release, ` +
            `pick another '${inputs.version}', ` +
            `or make sure the mirror in '${inputs.downloadUrl}' holds ${asset} under v${version}/.`
          : undefined,
      inputs
    )

    await verifyChecksum(archive, asset, assetUrl, await fs.readFile(checksumsFile, 'utf8'))

    const extracted = await tc.extractTar(archive, path.join(workDir, 'extracted'))
    const extractedBinary = path.join(extracted, binaryName)
    if (!(await isFile(extractedBinary))) {
      const found = (await fs.readdir(extracted)).join(', ') || 'nothing'
      throw new UserError(
        `${asset} from ${assetUrl} does not hold an '${binaryName}' binary at its root ` +
          `(found: ${found}). orun releases do; if '${inputs.downloadUrl}' points to a mirror, ` +
          'it must serve the release archives unchanged.'
      )
    }
    await fs.chmod(extractedBinary, 0o755)
    // Checked before caching, so a wrong binary never lands in the tool cache.
    await checkReportedVersion(extractedBinary, version, asset, assetUrl)

    const dir = await tc.cacheDir(extracted, toolName, version, nodeArch)
    return { version, dir, binary: path.join(dir, binaryName), cacheHit: false }
  } finally {
    await fs.rm(workDir, { recursive: true, force: true })
  }
}

export interface OrunSource {
  orunPath?: string
  orunVersion?: string
  token?: string
  downloadUrl?: string
  /** Defaults: orun-version, token, orun-download-url. */
  inputNames?: Partial<InstallInputNames>
}

/**
 * Used by the plan and run actions: `orun-path` (a binary or a folder holding `orun`, e.g. built
 * by `go install`) wins; else install `orun-version` (default latest). Returns the absolute
 * binary path and its version.
 */
export async function resolveOrun(
  source: OrunSource
): Promise<{ binary: string; version: string }> {
  const orunPath = source.orunPath?.trim()
  if (orunPath) {
    if (source.orunVersion?.trim() && source.orunVersion.trim() !== 'latest') {
      core.info(
        `orun-path is set, so orun-version '${source.orunVersion.trim()}' is not installed.`
      )
    }
    const binary = await localBinary(orunPath)
    return { binary, version: await getOrunVersion(binary) }
  }
  const installed = await installOrun({
    version: source.orunVersion?.trim() || 'latest',
    token: source.token,
    downloadUrl: source.downloadUrl,
    inputNames: { ...orunSourceInputs, ...source.inputNames }
  })
  core.info(
    `Using orun ${installed.version} from ${installed.dir}` +
      (installed.cacheHit ? ' (tool cache hit).' : ' (downloaded and verified).')
  )
  return { binary: installed.binary, version: installed.version }
}

/** Authorization for a download: the token only goes to github.com, never to a mirror. */
export function downloadAuthorization(url: string, token: string | undefined): string | undefined {
  return token && new URL(url).hostname === 'github.com' ? `token ${token}` : undefined
}

function parseRequestedVersion(raw: string, input: string): string {
  const text = raw.trim()
  if (!text || text.toLowerCase() === 'latest') return 'latest'
  // Exact versions only: a range such as ^2 would leave the asset URL undefined.
  const match = /^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$/.exec(text)
  const version = match && semver.valid(match[1])
  if (!version) {
    throw new UserError(
      `Input '${input}' must be latest or an exact orun version such as 2.54.0 or v2.54.0, ` +
        `got '${raw}'.`
    )
  }
  return version
}

function downloadBase(version: string, downloadUrl: string | undefined, inputs: InstallInputNames) {
  const mirror = downloadUrl?.trim()
  if (!mirror) return `${defaultDownloadBase}/v${version}/`
  let parsed: URL
  try {
    parsed = new URL(mirror)
  } catch {
    parsed = new URL('invalid:')
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new UserError(
      `Input '${inputs.downloadUrl}' must be an http(s) URL of a mirror laid out like ` +
        `${defaultDownloadBase} (holding v<X.Y.Z>/<asset>), got '${mirror}'.`
    )
  }
  return `${mirror.replace(/\/+$/, '')}/v${version}/`
}

/** Thrown for answers worth retrying (5xx); anything else is decided at once. */
class RetryableHttpError extends Error {
  constructor(
    readonly status: number,
    url: string
  ) {
    super(`${url} answered HTTP ${status}`)
  }
}

async function resolveLatestVersion(
  apiUrl: string,
  token: string | undefined,
  inputs: InstallInputNames
): Promise<string> {
  const url = `${apiUrl.replace(/\/+$/, '')}${latestReleasePath}`
  const pin = `pin the '${inputs.version}' input to an exact release such as 2.54.0 (see ${releasesPage})`
  const headers: Record<string, string> = {
    accept: 'application/vnd.github+json',
    'x-github-api-version': '2022-11-28'
  }
  if (token) headers.authorization = `Bearer ${token}`
  const client = new HttpClient('orun-action', [], { allowRetries: false })

  core.info(`Resolving the latest orun release through ${url}`)
  let answer: { status: number; body: string; rateLimitRemaining?: string }
  try {
    answer = await withRetry(
      async () => {
        const response = await client.get(url, headers)
        const body = await response.readBody()
        const status = response.message.statusCode ?? 0
        if (status >= 500) throw new RetryableHttpError(status, url)
        const remaining = response.message.headers['x-ratelimit-remaining']
        return {
          status,
          body,
          rateLimitRemaining: Array.isArray(remaining) ? remaining[0] : remaining
        }
      },
      {
        attempts: 3,
        baseMs: 500,
        capMs: 4000,
        decide: () => ({ retry: true }),
        onRetry: (error, attempt, delayMs) =>
          core.info(`${errorMessage(error)}; retry ${attempt + 1} in ${delayMs} ms`)
      }
    )
  } catch (error) {
    throw new UserError(
      `Could not resolve the latest orun release: ${errorMessage(error)}. ` +
        `Re-run the job, or ${pin}.`
    )
  } finally {
    client.dispose()
  }

  const { status, body } = answer
  const apiMessage = githubMessage(body)
  if (status === 401) {
    throw new UserError(
      `The GitHub API rejected the token given in '${inputs.token}' (HTTP 401 from ${url}` +
        `${apiMessage}). Pass a valid token (the default \${{ github.token }} works), or ${pin}.`
    )
  }
  if (status === 403 || status === 429) {
    const limited = answer.rateLimitRemaining === '0' || status === 429
    throw new UserError(
      `The GitHub API refused to list orun releases (HTTP ${status} from ${url}` +
        `${limited ? ', rate limit exceeded' : ''}${apiMessage}). ` +
        `Pass a token through the '${inputs.token}' input (the default \${{ github.token }} ` +
        `raises the rate limit), or ${pin}.`
    )
  }
  if (status === 404) {
    throw new UserError(
      `${url} answered 404: no latest orun release is visible through this API. ` +
        `On GitHub Enterprise Server or without github.com access, ${pin} ` +
        `and point '${inputs.downloadUrl}' at a mirror of the releases.`
    )
  }
  if (status !== 200) {
    throw new UserError(`${url} answered HTTP ${status}${apiMessage}. Re-run the job, or ${pin}.`)
  }
  let tag: unknown
  try {
    tag = (JSON.parse(body) as { tag_name?: unknown }).tag_name
  } catch {
    tag = undefined
  }
  const version = typeof tag === 'string' ? semver.valid(tag.replace(/^v/, '')) : null
  if (!version) {
    throw new UserError(
      `${url} did not answer with a release tag like v2.54.0 (tag_name: ${JSON.stringify(tag)}). ` +
        `${pin[0].toUpperCase()}${pin.slice(1)}.`
    )
  }
  core.info(`The latest orun release is v${version}`)
  return version
}

/** GitHub's JSON error bodies carry a `message`; appended to our own messages when present. */
function githubMessage(body: string): string {
  try {
    const message = (JSON.parse(body) as { message?: unknown }).message
    return typeof message === 'string' && message ? `: ${message}` : ''
  } catch {
    return ''
  }
}

function httpStatusOf(error: unknown): number | undefined {
  return error instanceof tc.HTTPError ? error.httpStatusCode : undefined
}

/**
 * Downloads with tool-cache (which retries 5xx, 408 and 429). `explain` turns a status into a
 * specific message; other failures get a generic one.
 */
async function downloadOrExplain(
  url: string,
  dest: string,
  token: string | undefined,
  explain: (status: number) => string | undefined,
  inputs: InstallInputNames
): Promise<string> {
  try {
    return await tc.downloadTool(url, dest, downloadAuthorization(url, token))
  } catch (error) {
    const status = httpStatusOf(error)
    const specific = status === undefined ? undefined : explain(status)
    if (specific) throw new UserError(specific)
    const what = status === undefined ? errorMessage(error) : `HTTP ${status}`
    const hint =
      status === 401 || status === 403
        ? `Check the '${inputs.token}' input, or that the mirror in '${inputs.downloadUrl}' allows anonymous downloads.`
        : `Re-run the job; if this keeps happening, download from a mirror set in '${inputs.downloadUrl}'.`
    throw new UserError(`Could not download ${url} (${what}). ${hint}`)
  }
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** checksums.txt lines are `<sha256>  <asset>` (a `*` before the name marks binary mode). */
function expectedChecksum(checksums: string, asset: string): string | undefined {
  for (const line of checksums.split(/\r?\n/)) {
    const match = /^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$/.exec(line.trim())
    if (match && match[2] === asset) return match[1].toLowerCase()
  }
  return undefined
}

async function verifyChecksum(
  archive: string,
  asset: string,
  assetUrl: string,
  checksums: string
): Promise<void> {
  const actual = await sha256Of(archive)
  const expected = expectedChecksum(checksums, asset)
  if (!expected) {
    throw new UserError(
      `checksums.txt next to ${assetUrl} has no line for ${asset} (the download's sha256 is ` +
        `${actual}), so the archive cannot be verified and was not installed. ` +
        'If you use a mirror, copy the release\u2019s checksums.txt to it unchanged.'
    )
  }
  if (expected !== actual) {
    throw new UserError(
      `Checksum mismatch for ${asset} from ${assetUrl}: checksums.txt says sha256 ${expected}, ` +
        `the download has sha256 ${actual}. It was not installed. Re-run the job; if it persists, ` +
        'the release or the mirror serves a corrupted or altered file.'
    )
  }
  core.info(`Verified ${asset}: sha256 ${actual}`)
}

async function checkReportedVersion(
  binary: string,
  version: string,
  asset: string,
  assetUrl: string
): Promise<void> {
  let reported: string
  try {
    reported = await getOrunVersion(binary)
  } catch (error) {
    throw new UserError(
      `The orun binary from ${asset} (${assetUrl}) did not run on this runner: ` +
        `${errorMessage(error)}`
    )
  }
  if (reported.replace(/^v/, '') !== version) {
    throw new UserError(
      `The orun binary from ${asset} (${assetUrl}) reports version ${reported}, ` +
        `but v${version} was requested, so it was not installed. ` +
        'The release or the mirror serves the wrong archive under this version.'
    )
  }
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await fs.stat(file)).isFile()
  } catch {
    return false
  }
}

/** `orun-path` may name the binary or a folder holding it; `~` means the home folder. */
async function localBinary(orunPath: string): Promise<string> {
  const expanded = orunPath.replace(/^~(?=$|\/)/, homedir())
  const absolute = path.resolve(expanded)
  let isDirectory: boolean
  try {
    isDirectory = (await fs.stat(absolute)).isDirectory()
  } catch {
    throw new UserError(
      `Input 'orun-path' is '${orunPath}', but ${absolute} does not exist. Set it to the orun ` +
        'binary or the folder holding it (go install puts it in $(go env GOPATH)/bin), ' +
        'or leave it empty to install orun-version.'
    )
  }
  const binary = isDirectory ? path.join(absolute, binaryName) : absolute
  if (isDirectory && !(await isFile(binary))) {
    throw new UserError(
      `Input 'orun-path' names the folder ${absolute}, which holds no '${binaryName}' file. ` +
        'Point it at the orun binary itself or at the folder that holds it.'
    )
  }
  try {
    await fs.access(binary, constants.X_OK)
  } catch {
    throw new UserError(
      `Input 'orun-path' points to ${binary}, which is not executable. Run chmod +x on it ` +
        'in an earlier step, or point orun-path at the built orun binary.'
    )
  }
  return binary
}
