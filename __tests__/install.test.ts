import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from '@jest/globals'
import * as tc from '@actions/tool-cache'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { chmod, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { UserError } from '../src/common/errors.js'
import {
  downloadAuthorization,
  installOrun,
  resolveOrun,
  type InstallOptions
} from '../src/install/installer.js'
import { run } from '../src/install/main.js'
import { runAction } from '../src/common/errors.js'
import { assetName, orunPlatform } from '../src/install/platform.js'
import {
  buildFakeRelease,
  startReleaseServer,
  type ReleaseServer
} from '../testing/release-server.js'

// @actions/tool-cache v4 reads RUNNER_TOOL_CACHE and RUNNER_TEMP on every call, not at import
// time, so each test can point them at fresh folders after the static imports above.

const host = orunPlatform()
const apiLatestPath = '/api/repos/sourceplane/orun/releases/latest'

let server: ReleaseServer
let root: string
let toolCache: string
let runnerTemp: string
let savedEnv: NodeJS.ProcessEnv
let stdout: string[]
const realWrite = process.stdout.write.bind(process.stdout)

beforeAll(async () => {
  server = await startReleaseServer()
})

afterAll(async () => {
  await server.close()
})

beforeEach(() => {
  server.reset()
  savedEnv = { ...process.env }
  root = mkdtempSync(path.join(tmpdir(), 'orun-install-test-'))
  toolCache = path.join(root, 'toolcache')
  runnerTemp = path.join(root, 'temp')
  mkdirSync(toolCache)
  mkdirSync(runnerTemp)
  process.env.RUNNER_TOOL_CACHE = toolCache
  process.env.RUNNER_TEMP = runnerTemp
  // The action's logs (and its ::error:: commands) go to stdout; keep them for assertions.
  stdout = []
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout.push(chunk.toString())
    return true
  }) as typeof process.stdout.write
})

afterEach(() => {
  process.stdout.write = realWrite
  process.env = savedEnv
  // core.setFailed sets it; left at 1 it would fail the whole jest process.
  process.exitCode = undefined
  rmSync(root, { recursive: true, force: true })
})

/** Serves a release under /releases/v<version>/ as a mirror would. */
function publish(
  version: string,
  options: { reports?: string; entry?: string; checksums?: (real: string) => string } = {}
) {
  const asset = assetName(version, host.os, host.arch)
  const release = buildFakeRelease(asset, options.reports ?? version, { entry: options.entry })
  const base = `/releases/v${version}`
  server.routes.set(`${base}/${asset}`, { body: release.archive })
  server.routes.set(`${base}/checksums.txt`, {
    body: options.checksums ? options.checksums(release.checksums) : release.checksums
  })
  return { ...release, assetPath: `${base}/${asset}`, checksumsPath: `${base}/checksums.txt` }
}

function mirror(version: string, extra: Partial<InstallOptions> = {}): InstallOptions {
  return { version, downloadUrl: `${server.url}/releases`, ...extra }
}

async function failure(promise: Promise<unknown>): Promise<UserError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown
  )
  expect(error).toBeInstanceOf(UserError)
  return error as UserError
}

function nothingCached(version: string) {
  expect(tc.find('orun', version, process.arch)).toBe('')
  expect(existsSync(path.join(toolCache, 'orun', version))).toBe(false)
}

describe('installOrun from a mirror', () => {
  test('downloads, verifies, extracts, checks the version and caches', async () => {
    const release = publish('1.2.3')

    const installed = await installOrun(mirror('1.2.3', { token: 'secret-token' }))

    expect(installed).toEqual({
      version: '1.2.3',
      dir: path.join(toolCache, 'orun', '1.2.3', process.arch),
      binary: path.join(toolCache, 'orun', '1.2.3', process.arch, 'orun'),
      cacheHit: false
    })
    expect(existsSync(`${installed.dir}.complete`)).toBe(true)
    expect(execFileSync(installed.binary, ['--version']).toString().trim()).toBe(
      'orun version 1.2.3'
    )
    expect(server.requests.map(r => r.path)).toEqual([release.checksumsPath, release.assetPath])
    // The token is for github.com only; a mirror never sees it.
    expect(server.requests.every(r => r.headers.authorization === undefined)).toBe(true)
    expect(stdout.join('')).toContain(`Verified ${release.asset}: sha256 ${release.sha256}`)
    // Downloads and the extracted copy are cleaned out of RUNNER_TEMP.
    expect(readdirSync(runnerTemp)).toEqual([])
  })

  test('a second install is a tool-cache hit with no request at all', async () => {
    publish('1.2.3')
    const first = await installOrun(mirror('1.2.3'))
    server.reset() // any download now would 404

    const second = await installOrun(mirror('v1.2.3'))

    expect(second).toEqual({ ...first, cacheHit: true })
    expect(server.requests).toEqual([])
  })

  test('a v-prefixed version downloads the v-tagged folder and the v-less asset', async () => {
    const release = publish('1.4.2')

    const installed = await installOrun(mirror('v1.4.2'))

    expect(installed.version).toBe('1.4.2')
    expect(release.asset).toBe(`orun_1.4.2_${host.os}_${host.arch}.tar.gz`)
    expect(server.requests.map(r => r.path)).toContain(`/releases/v1.4.2/${release.asset}`)
  })

  test('latest is resolved through the API with the token, then installed', async () => {
    publish('3.1.0')
    server.routes.set(apiLatestPath, { body: JSON.stringify({ tag_name: 'v3.1.0' }) })

    const installed = await installOrun(
      mirror('latest', { apiUrl: `${server.url}/api`, token: 'secret-token' })
    )

    expect(installed.version).toBe('3.1.0')
    expect(execFileSync(installed.binary, ['--version']).toString()).toContain('3.1.0')
    const [api, ...downloads] = server.requests
    expect(api.path).toBe(apiLatestPath)
    expect(api.headers.authorization).toBe('Bearer secret-token')
    expect(downloads).toHaveLength(2)
    expect(downloads.every(r => r.headers.authorization === undefined)).toBe(true)
  })

  test('latest retries a 5xx answer of the API', async () => {
    publish('3.1.0')
    let calls = 0
    server.routes.set(apiLatestPath, () =>
      ++calls === 1 ? { status: 502 } : { body: JSON.stringify({ tag_name: 'v3.1.0' }) }
    )

    const installed = await installOrun(mirror('latest', { apiUrl: `${server.url}/api` }))

    expect(installed.version).toBe('3.1.0')
    expect(calls).toBe(2)
  })

  test('a rate-limited API answer suggests the token input or pinning version', async () => {
    server.routes.set(apiLatestPath, {
      status: 403,
      headers: { 'x-ratelimit-remaining': '0', 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'API rate limit exceeded for 10.0.0.1.' })
    })

    const error = await failure(installOrun(mirror('latest', { apiUrl: `${server.url}/api` })))

    expect(error.message).toContain('rate limit exceeded')
    expect(error.message).toContain("'token' input")
    expect(error.message).toContain("pin the 'version' input to an exact release")
    expect(server.requests).toHaveLength(1)
  })

  test('a rejected token (401) names the token input', async () => {
    server.routes.set(apiLatestPath, { status: 401, body: '{"message":"Bad credentials"}' })

    const error = await failure(
      installOrun(mirror('latest', { apiUrl: `${server.url}/api`, token: 'expired' }))
    )

    expect(error.message).toContain("token given in 'token'")
    expect(error.message).toContain('Bad credentials')
    expect(error.message).toContain("pin the 'version' input")
  })

  test('latest uses GITHUB_API_URL when no apiUrl is given', async () => {
    publish('3.2.0')
    server.routes.set(apiLatestPath, { body: JSON.stringify({ tag_name: 'v3.2.0' }) })
    process.env.GITHUB_API_URL = `${server.url}/api`

    expect((await installOrun(mirror('latest'))).version).toBe('3.2.0')
  })

  test('a checksum mismatch fails, names the asset and both hashes, and caches nothing', async () => {
    const wrong = createHash('sha256').update('tampered').digest('hex')
    const release = publish('2.0.0', {
      checksums: real => real.replace(/^[0-9a-f]{64}(?= {2}orun_2)/m, wrong)
    })

    const error = await failure(installOrun(mirror('2.0.0')))

    expect(error.message).toContain(`Checksum mismatch for ${release.asset}`)
    expect(error.message).toContain(wrong)
    expect(error.message).toContain(release.sha256)
    expect(error.message).toContain('mirror')
    nothingCached('2.0.0')
    expect(readdirSync(runnerTemp)).toEqual([])
  })

  test('a checksums.txt without a line for the asset fails and caches nothing', async () => {
    const asset = assetName('2.0.0', host.os, host.arch)
    const release = publish('2.0.0', {
      checksums: real =>
        real
          .split('\n')
          .filter(line => !line.endsWith(asset))
          .join('\n')
    })

    const error = await failure(installOrun(mirror('2.0.0')))

    expect(error.message).toContain(`has no line for ${release.asset}`)
    expect(error.message).toContain(release.sha256)
    expect(error.message).toContain('copy the release\u2019s checksums.txt')
    nothingCached('2.0.0')
  })

  test('a missing asset (404) names the URL, the asset and the fixes', async () => {
    const release = publish('2.0.0')
    server.routes.delete(release.assetPath)

    const error = await failure(installOrun(mirror('2.0.0')))

    expect(error.message).toContain(`${server.url}${release.assetPath}`)
    expect(error.message).toContain(`has no asset ${release.asset}`)
    expect(error.message).toContain('https://github.com/sourceplane/orun/releases/tag/v2.0.0')
    expect(error.message).toContain("another 'version'")
    expect(error.message).toContain("'download-url'")
    nothingCached('2.0.0')
  })

  test('an unknown version (checksums.txt 404) says the version was not found', async () => {
    const error = await failure(installOrun(mirror('9.9.9')))

    expect(error.message).toContain('orun v9.9.9 was not found')
    expect(error.message).toContain(`${server.url}/releases/v9.9.9/checksums.txt`)
    expect(error.message).toContain("set the 'version' input")
    expect(error.message).toContain('https://github.com/sourceplane/orun/releases')
    // The asset is never asked for once the version is known to be missing.
    expect(server.requests).toHaveLength(1)
  })

  test('a binary reporting another version is refused and not cached', async () => {
    publish('2.0.1', { reports: '2.0.0' })

    const error = await failure(installOrun(mirror('2.0.1')))

    expect(error.message).toContain('reports version 2.0.0, but v2.0.1 was requested')
    nothingCached('2.0.1')
  })

  test('an archive without orun at its root is refused', async () => {
    const release = publish('2.0.2', { entry: 'bin/orun' })

    const error = await failure(installOrun(mirror('2.0.2')))

    expect(error.message).toContain(`${release.asset}`)
    expect(error.message).toContain("'orun' binary at its root (found: bin)")
    nothingCached('2.0.2')
  })

  test('a failing download is retried by tool-cache, then explained', async () => {
    const release = publish('2.0.3')
    server.routes.set(release.assetPath, { status: 503 })
    const globals = globalThis as Record<string, unknown>
    globals.TEST_DOWNLOAD_TOOL_RETRY_MIN_SECONDS = 0
    globals.TEST_DOWNLOAD_TOOL_RETRY_MAX_SECONDS = 0
    try {
      const error = await failure(installOrun(mirror('2.0.3')))

      expect(error.message).toContain(`Could not download ${server.url}${release.assetPath}`)
      expect(error.message).toContain('HTTP 503')
      expect(error.message).toContain("'download-url'")
      expect(server.requests.filter(r => r.path === release.assetPath)).toHaveLength(3)
    } finally {
      delete globals.TEST_DOWNLOAD_TOOL_RETRY_MIN_SECONDS
      delete globals.TEST_DOWNLOAD_TOOL_RETRY_MAX_SECONDS
    }
  })

  test('a download-url that is not an http(s) URL names the input', async () => {
    const error = await failure(installOrun({ version: '1.0.0', downloadUrl: 'ftp://mirror/orun' }))

    expect(error.message).toContain("Input 'download-url' must be an http(s) URL")
    expect(error.message).toContain("'ftp://mirror/orun'")
  })
})

describe('installOrun input checks', () => {
  test('Windows is refused with a pointer to ubuntu or macOS runners', async () => {
    const error = await failure(installOrun(mirror('1.0.0', { platform: 'win32' })))

    expect(error.message).toContain('orun publishes no Windows build')
    expect(error.message).toContain('ubuntu or macOS runner')
    expect(server.requests).toEqual([])
  })

  test('an unknown operating system is named with the supported ones', async () => {
    const error = await failure(installOrun(mirror('1.0.0', { platform: 'freebsd' })))

    expect(error.message).toContain("operating system 'freebsd'")
    expect(error.message).toContain('Supported: linux, darwin')
  })

  test('an unknown architecture is named with the supported ones', async () => {
    const error = await failure(installOrun(mirror('1.0.0', { arch: 's390x' })))

    expect(error.message).toContain("CPU architecture 's390x'")
    expect(error.message).toContain('Supported: x64, arm64')
    expect(server.requests).toEqual([])
  })

  test('platform tables map Node names to orun release names', () => {
    expect(orunPlatform('linux', 'x64')).toEqual({ os: 'linux', arch: 'amd64' })
    expect(orunPlatform('darwin', 'arm64')).toEqual({ os: 'darwin', arch: 'arm64' })
    expect(assetName('v2.54.0', 'darwin', 'arm64')).toBe('orun_2.54.0_darwin_arm64.tar.gz')
  })

  test.each(['^2.0.0', '2.x', 'two', '1.2', 'v1.2.3.4'])(
    'invalid version text %p names the input',
    async version => {
      const error = await failure(installOrun(mirror(version)))

      expect(error.message).toContain(`Input 'version' must be latest or an exact orun version`)
      expect(error.message).toContain(`got '${version}'`)
      expect(server.requests).toEqual([])
    }
  )

  test('the download token goes to github.com only', () => {
    const github = 'https://github.com/sourceplane/orun/releases/download/v1.0.0/checksums.txt'
    expect(downloadAuthorization(github, 'abc')).toBe('token abc')
    expect(downloadAuthorization(github, undefined)).toBeUndefined()
    expect(downloadAuthorization('https://mirror.example.com/v1.0.0/x', 'abc')).toBeUndefined()
    expect(downloadAuthorization('https://github.com.evil.example/x', 'abc')).toBeUndefined()
  })
})

describe('resolveOrun', () => {
  async function localOrun(dir: string, version: string): Promise<string> {
    mkdirSync(dir, { recursive: true })
    const binary = path.join(dir, 'orun')
    await writeFile(binary, `#!/bin/sh\necho "orun version ${version}"\n`, { mode: 0o755 })
    return binary
  }

  test('orun-path naming the binary wins over orun-version', async () => {
    const binary = await localOrun(path.join(root, 'built'), '0.0.0-dev')

    const resolved = await resolveOrun({ orunPath: binary, orunVersion: '1.0.0' })

    expect(resolved).toEqual({ binary, version: '0.0.0-dev' })
    expect(server.requests).toEqual([])
  })

  test('orun-path naming a folder uses the orun inside it', async () => {
    const binary = await localOrun(path.join(root, 'gopath', 'bin'), '4.5.6')

    const resolved = await resolveOrun({ orunPath: path.join(root, 'gopath', 'bin') })

    expect(resolved).toEqual({ binary, version: '4.5.6' })
  })

  test('a relative orun-path is made absolute', async () => {
    const binary = await localOrun(path.join(root, 'rel'), '4.5.7')
    const relative = path.relative(process.cwd(), binary)

    const resolved = await resolveOrun({ orunPath: relative })

    expect(path.isAbsolute(resolved.binary)).toBe(true)
    expect(resolved.binary).toBe(binary)
  })

  test('an orun-path that does not exist names the input', async () => {
    const missing = path.join(root, 'nope', 'orun')

    const error = await failure(resolveOrun({ orunPath: missing }))

    expect(error.message).toContain(`Input 'orun-path' is '${missing}'`)
    expect(error.message).toContain('does not exist')
    expect(error.message).toContain('leave it empty to install orun-version')
  })

  test('a folder without orun, or a file that is not executable, is explained', async () => {
    const empty = path.join(root, 'empty')
    mkdirSync(empty)
    const folderError = await failure(resolveOrun({ orunPath: empty }))
    expect(folderError.message).toContain(`'orun-path' names the folder ${empty}`)

    const binary = await localOrun(path.join(root, 'noexec'), '1.0.0')
    await chmod(binary, 0o644)
    const execError = await failure(resolveOrun({ orunPath: binary }))
    expect(execError.message).toContain('not executable')
    expect(execError.message).toContain('chmod +x')
  })

  test('without orun-path it installs orun-version and names that input in errors', async () => {
    publish('5.1.0')
    const source = { orunVersion: 'v5.1.0', downloadUrl: `${server.url}/releases` }

    const resolved = await resolveOrun(source)

    expect(resolved).toEqual({
      binary: path.join(toolCache, 'orun', '5.1.0', process.arch, 'orun'),
      version: '5.1.0'
    })

    const error = await failure(resolveOrun({ ...source, orunVersion: 'newest' }))
    expect(error.message).toContain("Input 'orun-version' must be latest")
    const unknown = await failure(resolveOrun({ ...source, orunVersion: '5.1.1' }))
    expect(unknown.message).toContain("set the 'orun-version' input")
    expect(unknown.message).toContain("'orun-download-url'")
  })
})

describe('root action main.run() under its catch point', () => {
  function actionFiles() {
    const output = path.join(root, 'github_output')
    const githubPath = path.join(root, 'github_path')
    for (const file of [output, githubPath]) execFileSync('touch', [file])
    process.env.GITHUB_OUTPUT = output
    process.env.GITHUB_PATH = githubPath
    return { output, githubPath }
  }

  /** Parses the `name<<delimiter` blocks that core.setOutput writes. */
  function outputs(file: string): Record<string, string> {
    const result: Record<string, string> = {}
    const lines = readFileSync(file, 'utf8').split('\n')
    for (let i = 0; i < lines.length; i++) {
      const match = /^([\w-]+)<<(.+)$/.exec(lines[i])
      if (!match) continue
      const end = lines.indexOf(match[2], i + 1)
      result[match[1]] = lines.slice(i + 1, end).join('\n')
      i = end
    }
    return result
  }

  test('installs, adds the folder to PATH and sets the outputs', async () => {
    publish('6.0.0')
    server.routes.set(apiLatestPath, { body: JSON.stringify({ tag_name: 'v6.0.0' }) })
    process.env.GITHUB_API_URL = `${server.url}/api`
    process.env.INPUT_VERSION = 'latest'
    process.env.INPUT_TOKEN = 'gh-token'
    process.env['INPUT_DOWNLOAD-URL'] = `${server.url}/releases/`
    const { output, githubPath } = actionFiles()
    const dir = path.join(toolCache, 'orun', '6.0.0', process.arch)

    await run()

    expect(process.exitCode).toBeUndefined()
    expect(outputs(output)).toEqual({ version: '6.0.0', path: dir })
    expect(readFileSync(githubPath, 'utf8').trim()).toBe(dir)
    expect(process.env.PATH?.split(path.delimiter)[0]).toBe(dir)
    expect(stdout.join('')).toContain(`orun 6.0.0 downloaded, verified and cached at ${dir}`)
    expect(server.requests.find(r => r.path === apiLatestPath)?.headers.authorization).toBe(
      'Bearer gh-token'
    )

    // Same inputs again: served from the tool cache, only the API call for latest is made.
    server.requests.length = 0
    stdout.length = 0
    await run()
    expect(stdout.join('')).toContain(`orun 6.0.0 found in the tool cache at ${dir}`)
    expect(server.requests.map(r => r.path)).toEqual([apiLatestPath])
  })

  test('an input mistake fails the step with the message, not a bug report', async () => {
    process.env.INPUT_VERSION = 'v1'
    actionFiles()

    await runAction(run)

    expect(process.exitCode).toBe(1)
    const log = stdout.join('')
    expect(log).toContain("::error::Input 'version' must be latest or an exact orun version")
    expect(log).not.toContain('This is a bug')
  })
})
