import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import * as path from 'node:path'

/**
 * A local stand-in for GitHub's release downloads and API (127.0.0.1, random port). Routes are
 * exact paths; every request is recorded so tests can assert what was (not) fetched.
 */

export interface RecordedRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
}

export interface Reply {
  status?: number
  body?: string | Buffer
  headers?: Record<string, string>
}

export type Route = Reply | ((request: RecordedRequest) => Reply)

export interface ReleaseServer {
  /** http://127.0.0.1:<port>, no trailing slash. */
  url: string
  requests: RecordedRequest[]
  routes: Map<string, Route>
  /** Forgets routes and recorded requests. */
  reset(): void
  close(): Promise<void>
}

export async function startReleaseServer(): Promise<ReleaseServer> {
  const requests: RecordedRequest[] = []
  const routes = new Map<string, Route>()
  const server: Server = createServer((req, res) => {
    const recorded = {
      method: req.method ?? 'GET',
      path: new URL(req.url ?? '/', 'http://x').pathname,
      headers: req.headers
    }
    requests.push(recorded)
    const route = routes.get(recorded.path)
    const reply = typeof route === 'function' ? route(recorded) : route
    const body = reply?.body ?? (reply ? '' : 'Not Found')
    res.writeHead(reply?.status ?? (reply ? 200 : 404), reply?.headers)
    res.end(body)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    routes,
    reset() {
      requests.length = 0
      routes.clear()
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections()
        server.close(error => (error ? reject(error) : resolve()))
      })
  }
}

export interface FakeRelease {
  asset: string
  archive: Buffer
  sha256: string
  /** `<sha256>  <asset>` plus a line for another asset, like a real checksums.txt. */
  checksums: string
}

/**
 * Builds a real .tar.gz (with the system tar) holding an executable `orun` shell script that
 * prints `orun version <reports>`. `entry` changes the path inside the archive.
 */
export function buildFakeRelease(
  asset: string,
  reports: string,
  options: { entry?: string } = {}
): FakeRelease {
  const dir = mkdtempSync(path.join(tmpdir(), 'orun-fake-release-'))
  try {
    const entry = options.entry ?? 'orun'
    const content = path.join(dir, 'content')
    mkdirSync(path.dirname(path.join(content, entry)), { recursive: true })
    writeFileSync(path.join(content, entry), `#!/bin/sh\necho "orun version ${reports}"\n`, {
      mode: 0o755
    })
    const archivePath = path.join(dir, asset)
    execFileSync('tar', ['-czf', archivePath, '-C', content, entry.split('/')[0]])
    const archive = readFileSync(archivePath)
    const sha256 = createHash('sha256').update(archive).digest('hex')
    const other = createHash('sha256').update('another file').digest('hex')
    return {
      asset,
      archive,
      sha256,
      checksums: `${other}  orun_source.tar.gz\n${sha256}  ${asset}\n`
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
