/**
 * A local stand-in for the one GitHub REST API route the status action reads:
 *
 *   GET /repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt_number}/jobs
 *
 * so the job lookup is tested on loopback (point GITHUB_API_URL at `url`).
 * Like GitHub it:
 * - wants `Authorization: token X` or `Bearer X` with a known token; else
 *   401 `{"message":"Bad credentials"}`; a token without `actions: read`
 *   (see `tokens`) answers 403 `Resource not accessible by integration`;
 * - answers 404 `{"message":"Not Found"}` for an unknown repository, run or attempt;
 * - pages with `per_page` (default 30, at most 100) and `page`, and a `Link`
 *   header with absolute `next`/`last`/`first`/`prev` URLs;
 * - answers `{ total_count, jobs: [...] }`, each job with `id`, `run_id`,
 *   `run_attempt`, `name`, `status`, `conclusion`, `started_at`,
 *   `completed_at`, `html_url`, `runner_name`, ...;
 * - takes some time per request (`latencyMs`, default 10–30 ms), and can be
 *   told to fail the next requests (`failNext`) with a status such as 502.
 */
import http from 'node:http'

export interface StandinJob {
  name: string
  runnerName?: string | null
  startedAt?: string | null
  completedAt?: string | null
  conclusion?: 'success' | 'failure' | 'cancelled' | 'skipped' | null
}

export interface GitHubApiServerOptions {
  /** token -> may read actions (true) or not (false: 403). */
  tokens?: Record<string, boolean>
  latencyMs?: [number, number]
}

export interface GitHubApiServer {
  url: string
  /** Every request: method, path with query, status answered. */
  requests: Array<{ method: string; path: string; status: number }>
  /** Sets the jobs of one attempt of one workflow run of owner/repo. */
  setJobs(repository: string, runId: string, attempt: number, jobs: StandinJob[]): void
  /** The next `count` requests answer `status` with a GitHub-style body. */
  failNext(count: number, status: number): void
  close(): Promise<void>
}

export const DEFAULT_GITHUB_TOKEN = 'ghs_standin_token_with_actions_read'

export async function startGitHubApiServer(
  options: GitHubApiServerOptions = {}
): Promise<GitHubApiServer> {
  const tokens = options.tokens ?? { [DEFAULT_GITHUB_TOKEN]: true }
  const [minLatency, maxLatency] = options.latencyMs ?? [10, 30]
  const runs = new Map<string, Array<Record<string, unknown>>>()
  const requests: GitHubApiServer['requests'] = []
  let failures: { count: number; status: number } = { count: 0, status: 0 }
  let nextJobId = 90_000_001
  let url = ''

  const send = (res: http.ServerResponse, status: number, body: unknown, headers = {}) => {
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'X-GitHub-Media-Type': 'github.v3; format=json',
      ...headers
    })
    res.end(JSON.stringify(body))
  }
  const message = (text: string) => ({
    message: text,
    documentation_url: 'https://docs.github.com/rest',
    status: undefined as string | undefined
  })

  const server = http.createServer((req, res) => {
    const delay = minLatency + Math.random() * (maxLatency - minLatency)
    setTimeout(() => {
      const path = req.url ?? '/'
      const reply = (status: number, body: unknown, headers = {}) => {
        requests.push({ method: req.method ?? '', path, status })
        send(res, status, body, headers)
      }
      if (failures.count > 0) {
        failures.count--
        const body = message(failures.status >= 500 ? 'Server Error' : 'Error')
        body.status = String(failures.status)
        return reply(failures.status, body)
      }
      const auth = /^(?:token|Bearer) (.+)$/i.exec(req.headers.authorization ?? '')?.[1]
      if (!auth || !(auth in tokens)) return reply(401, message('Bad credentials'))
      const target = new URL(path, url)
      const route = /^\/repos\/([^/]+)\/([^/]+)\/actions\/runs\/(\d+)\/attempts\/(\d+)\/jobs$/.exec(
        target.pathname
      )
      if (req.method !== 'GET' || !route) return reply(404, message('Not Found'))
      if (!tokens[auth]) return reply(403, message('Resource not accessible by integration'))
      const [, owner, repo, runId, attempt] = route
      const jobs = runs.get(`${owner}/${repo}#${runId}#${attempt}`)
      if (!jobs) return reply(404, message('Not Found'))
      const perPage = Math.min(100, Math.max(1, Number(target.searchParams.get('per_page')) || 30))
      const page = Math.max(1, Number(target.searchParams.get('page')) || 1)
      const last = Math.max(1, Math.ceil(jobs.length / perPage))
      const link = (p: number, rel: string) => {
        const u = new URL(target.pathname, url)
        u.searchParams.set('per_page', String(perPage))
        u.searchParams.set('page', String(p))
        return `<${u.href}>; rel="${rel}"`
      }
      const links = [
        ...(page > 1 ? [link(page - 1, 'prev'), link(1, 'first')] : []),
        ...(page < last ? [link(page + 1, 'next'), link(last, 'last')] : [])
      ]
      reply(
        200,
        { total_count: jobs.length, jobs: jobs.slice((page - 1) * perPage, page * perPage) },
        links.length ? { Link: links.join(', ') } : {}
      )
    }, delay)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address() as { port: number }
  url = `http://127.0.0.1:${address.port}`

  return {
    url,
    requests,
    setJobs(repository, runId, attempt, jobs) {
      runs.set(
        `${repository}#${runId}#${attempt}`,
        jobs.map(job => {
          const id = nextJobId++
          return {
            id,
            run_id: Number(runId),
            run_url: `${url}/repos/${repository}/actions/runs/${runId}`,
            run_attempt: attempt,
            node_id: `CR_${id}`,
            head_sha: '0'.repeat(40),
            url: `${url}/repos/${repository}/actions/jobs/${id}`,
            html_url: `https://github.com/${repository}/actions/runs/${runId}/job/${id}`,
            status: job.conclusion === null ? 'in_progress' : 'completed',
            conclusion: job.conclusion === undefined ? 'success' : job.conclusion,
            created_at: job.startedAt ?? null,
            started_at: job.startedAt ?? null,
            completed_at: job.completedAt ?? null,
            name: job.name,
            steps: [],
            check_run_url: `${url}/repos/${repository}/check-runs/${id}`,
            labels: ['ubuntu-latest'],
            runner_id: job.runnerName ? id : null,
            runner_name: job.runnerName ?? null,
            runner_group_id: job.runnerName ? 1 : null,
            runner_group_name: job.runnerName ? 'GitHub Actions' : null,
            workflow_name: 'orun',
            head_branch: 'main'
          }
        })
      )
    },
    failNext(count, status) {
      failures = { count, status }
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections()
        server.close(error => (error ? reject(error) : resolve()))
      })
  }
}
