/**
 * A local stand-in for GitHub's artifact (results) service, the one @actions/artifact v2+
 * talks to on a runner: the twirp JSON API under ACTIONS_RESULTS_URL
 * (`POST /twirp/github.actions.results.api.v1.ArtifactService/<Method>`) and the signed
 * blob URLs it hands out, which the client writes through the Azure blob SDK (Put Block,
 * then Put Block List) and reads with a plain GET.
 *
 * What it reproduces, because the action depends on it:
 * - the runtime token: a JWT whose `scp` holds `Actions.Results:<run backend id>:<job backend id>`;
 *   the run backend id is the same in every attempt of a workflow run, so ListArtifacts of a later
 *   attempt sees the artifacts of earlier attempts, and only of its own workflow run;
 * - names unique per workflow run across attempts: a second CreateArtifact of a finalized name
 *   answers 409 `an artifact with this name already exists on the workflow run`;
 * - an artifact is listed only once finalized, and not after it expired (`expiresAt`, by the
 *   injected clock) or was deleted (DeleteArtifact, or `deleteArtifact()` as a user would);
 * - a token of another workflow run, or none, is refused (401), never answered with data;
 * - latency on every request (`latencyMs`, default 20-60 ms) and `listCalls`/`downloads` counters.
 */
import http from 'node:http'
import { randomBytes, randomUUID } from 'node:crypto'

const SERVICE = '/twirp/github.actions.results.api.v1.ArtifactService/'

export interface StoredArtifact {
  id: number
  name: string
  workflowRunBackendId: string
  workflowJobRunBackendId: string
  createdAt: number
  expiresAt?: number
  finalized: boolean
  size: number
  digest?: string
  /** Blob path under /blob/ and its committed content. */
  blobPath: string
  content?: Buffer
}

export interface ArtifactServiceOptions {
  now?: () => number
  latencyMs?: () => number
}

export interface ArtifactService {
  url: string
  /** ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL for one job of one attempt of a workflow run. */
  runtimeEnv(workflowRun: string, attempt: number, job: string): Record<string, string>
  /** Finalized, unexpired artifacts of a workflow run, oldest first. */
  artifacts(workflowRun: string): StoredArtifact[]
  /** Deletes an artifact the way a user (or the retention) does; returns whether it existed. */
  deleteArtifact(workflowRun: string, name: string): boolean
  /** ListArtifacts calls answered, and blob downloads served. */
  stats: { listCalls: number; downloads: number; creates: number }
  close(): Promise<void>
}

interface Scope {
  runBackendId: string
  jobBackendId: string
}

class TwirpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(message)
  }
}

export async function startArtifactService(
  options: ArtifactServiceOptions = {}
): Promise<ArtifactService> {
  const now = options.now ?? Date.now
  const latency = options.latencyMs ?? (() => 20 + Math.random() * 40)
  const runBackendIds = new Map<string, string>()
  const tokens = new Map<string, Scope>()
  const stored: StoredArtifact[] = []
  const blocks = new Map<string, Map<string, Buffer>>()
  const signatures = new Map<string, string>()
  const stats = { listCalls: 0, downloads: 0, creates: 0 }
  let nextId = 1000
  let url = ''

  const runBackendId = (workflowRun: string) => {
    let id = runBackendIds.get(workflowRun)
    if (!id) runBackendIds.set(workflowRun, (id = randomUUID()))
    return id
  }
  const live = (a: StoredArtifact) =>
    a.finalized && (a.expiresAt === undefined || a.expiresAt > now())
  const signed = (path: string) => {
    const sig = randomBytes(12).toString('hex')
    signatures.set(sig, path)
    return `${url}/blob/${path}?sv=2023-11-03&se=${new Date(now() + 3_600_000).toISOString()}&sig=${sig}`
  }

  function authorize(req: http.IncomingMessage, body: Record<string, unknown>): Scope {
    const auth = req.headers.authorization ?? ''
    const scope = tokens.get(auth.replace(/^Bearer /, ''))
    if (!scope) throw new TwirpError(401, 'unauthenticated', 'invalid or missing runtime token')
    if (body.workflow_run_backend_id !== scope.runBackendId)
      throw new TwirpError(401, 'unauthenticated', 'token is not valid for this workflow run')
    return scope
  }

  const methods: Record<
    string,
    (body: Record<string, unknown>, scope: Scope) => Record<string, unknown>
  > = {
    CreateArtifact(body, scope) {
      const name = String(body.name ?? '')
      if (!name) throw new TwirpError(400, 'invalid_argument', 'name is required')
      if (
        stored.some(
          a => a.workflowRunBackendId === scope.runBackendId && a.name === name && live(a)
        )
      )
        throw new TwirpError(
          409,
          'already_exists',
          'an artifact with this name already exists on the workflow run'
        )
      // An upload that was never finalized is replaced by a new one of the same name.
      const stale = stored.findIndex(
        a => a.workflowRunBackendId === scope.runBackendId && a.name === name && !a.finalized
      )
      if (stale >= 0) stored.splice(stale, 1)
      const artifact: StoredArtifact = {
        id: ++nextId,
        name,
        workflowRunBackendId: scope.runBackendId,
        workflowJobRunBackendId: scope.jobBackendId,
        createdAt: now(),
        expiresAt: body.expires_at ? Date.parse(String(body.expires_at)) : undefined,
        finalized: false,
        size: 0,
        blobPath: `actionsresults/${scope.runBackendId}/${nextId}/${encodeURIComponent(name)}.zip`
      }
      stored.push(artifact)
      stats.creates++
      return { ok: true, signed_upload_url: signed(artifact.blobPath) }
    },
    FinalizeArtifact(body, scope) {
      const artifact = stored.find(
        a => a.workflowRunBackendId === scope.runBackendId && a.name === body.name && !a.finalized
      )
      if (!artifact) throw new TwirpError(404, 'not_found', 'artifact not found')
      if (!artifact.content)
        throw new TwirpError(400, 'failed_precondition', 'upload not committed')
      artifact.finalized = true
      artifact.size = artifact.content.length
      const hash = body.hash as string | undefined
      artifact.digest = hash
      return { ok: true, artifact_id: String(artifact.id) }
    },
    ListArtifacts(body, scope) {
      stats.listCalls++
      const nameFilter = body.name_filter as string | undefined
      const idFilter = body.id_filter as string | undefined
      return {
        artifacts: stored
          .filter(a => a.workflowRunBackendId === scope.runBackendId && live(a))
          .filter(a => nameFilter === undefined || a.name === nameFilter)
          .filter(a => idFilter === undefined || String(a.id) === String(idFilter))
          .map(a => ({
            workflow_run_backend_id: a.workflowRunBackendId,
            workflow_job_run_backend_id: a.workflowJobRunBackendId,
            database_id: String(a.id),
            name: a.name,
            size: String(a.size),
            created_at: new Date(a.createdAt).toISOString(),
            ...(a.digest ? { digest: a.digest } : {})
          }))
      }
    },
    GetSignedArtifactURL(body, scope) {
      const artifact = stored.find(
        a => a.workflowRunBackendId === scope.runBackendId && a.name === body.name && live(a)
      )
      if (!artifact) throw new TwirpError(404, 'not_found', 'artifact not found')
      return { signed_url: signed(artifact.blobPath) }
    },
    DeleteArtifact(body, scope) {
      const index = stored.findIndex(
        a => a.workflowRunBackendId === scope.runBackendId && a.name === body.name && live(a)
      )
      if (index < 0) throw new TwirpError(404, 'not_found', 'artifact not found')
      const [artifact] = stored.splice(index, 1)
      return { ok: true, artifact_id: String(artifact.id) }
    }
  }

  function blob(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void {
    const target = new URL(req.url ?? '/', 'http://localhost')
    const path = target.pathname.slice('/blob/'.length)
    if (signatures.get(target.searchParams.get('sig') ?? '') !== path) {
      res.writeHead(403, { 'x-ms-error-code': 'AuthenticationFailed' }).end()
      return
    }
    const artifact = stored.find(a => a.blobPath === path)
    const headers = { 'x-ms-request-id': randomUUID(), 'x-ms-version': '2023-11-03' }
    if (req.method === 'PUT' && target.searchParams.get('comp') === 'block') {
      const pending = blocks.get(path) ?? new Map<string, Buffer>()
      blocks.set(path, pending)
      pending.set(target.searchParams.get('blockid') ?? '', body)
      res.writeHead(201, headers).end()
      return
    }
    if (req.method === 'PUT' && target.searchParams.get('comp') === 'blocklist') {
      const ids = [...body.toString('utf8').matchAll(/<(?:Latest|Uncommitted|Committed)>([^<]*)</g)]
      const pending = blocks.get(path) ?? new Map<string, Buffer>()
      if (!artifact || ids.some(([, id]) => !pending.has(id))) {
        res.writeHead(400, { ...headers, 'x-ms-error-code': 'InvalidBlockList' }).end()
        return
      }
      artifact.content = Buffer.concat(ids.map(([, id]) => pending.get(id)!))
      blocks.delete(path)
      res.writeHead(201, { ...headers, etag: `"${randomUUID()}"` }).end()
      return
    }
    if (req.method === 'PUT') {
      // Put Blob (a single-shot upload).
      if (!artifact) {
        res.writeHead(404, headers).end()
        return
      }
      artifact.content = body
      res.writeHead(201, { ...headers, etag: `"${randomUUID()}"` }).end()
      return
    }
    if (req.method === 'GET' && artifact?.content && live(artifact)) {
      stats.downloads++
      res
        .writeHead(200, {
          ...headers,
          'content-type': 'application/zip',
          'content-length': artifact.content.length
        })
        .end(artifact.content)
      return
    }
    res.writeHead(404, { ...headers, 'x-ms-error-code': 'BlobNotFound' }).end()
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', chunk => chunks.push(chunk))
    req.on('end', () => {
      setTimeout(() => {
        const body = Buffer.concat(chunks)
        if (req.url?.startsWith('/blob/')) return blob(req, body, res)
        const method = req.url?.startsWith(SERVICE) ? req.url.slice(SERVICE.length) : ''
        const handler = req.method === 'POST' ? methods[method] : undefined
        const reply = (status: number, payload: unknown) =>
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload))
        if (!handler) return reply(404, { code: 'bad_route', msg: `no handler for ${req.url}` })
        try {
          const parsed = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>
          reply(200, handler(parsed, authorize(req, parsed)))
        } catch (error) {
          if (error instanceof TwirpError)
            return reply(error.status, { code: error.code, msg: error.message })
          reply(400, { code: 'malformed', msg: String(error) })
        }
      }, latency())
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address() as { port: number }
  url = `http://127.0.0.1:${address.port}`

  return {
    url,
    stats,
    runtimeEnv(workflowRun, attempt, job) {
      const scope = {
        runBackendId: runBackendId(workflowRun),
        // One backend id per job run: a job of another attempt is another job run.
        jobBackendId: randomUUID()
      }
      const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
      const token = [
        encode({ alg: 'RS256', typ: 'JWT' }),
        encode({
          scp: `Actions.GenericRead:00000000-0000-0000-0000-000000000000 Actions.Results:${scope.runBackendId}:${scope.jobBackendId}`,
          ac: `[{"Scope":"refs/heads/main","Permission":3}]`,
          job,
          attempt
        }),
        randomBytes(16).toString('base64url')
      ].join('.')
      tokens.set(token, scope)
      return { ACTIONS_RUNTIME_TOKEN: token, ACTIONS_RESULTS_URL: `${url}/` }
    },
    artifacts(workflowRun) {
      const id = runBackendIds.get(workflowRun)
      return stored.filter(a => a.workflowRunBackendId === id && live(a))
    },
    deleteArtifact(workflowRun, name) {
      const id = runBackendIds.get(workflowRun)
      const index = stored.findIndex(a => a.workflowRunBackendId === id && a.name === name)
      if (index < 0) return false
      stored.splice(index, 1)
      return true
    },
    close: () =>
      new Promise<void>(resolve => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
