/**
 * A fault-injecting HTTP proxy for the fault-and-abuse suite: it sits between the
 * action (its `backend-url`, and the OIDC token URL when a test routes that through
 * it too) and the local coordination server, and forwards every request unchanged
 * unless a rule matches. A rule is an outage window that lasts until the test
 * removes it (or for `count` requests), so tests wait on what the proxy saw
 * (`rule.hits`), never on the wall clock.
 *
 *   const proxy = await startFaultProxy(server.url)
 *   const outage = proxy.add({ path: /\/claim$/, fault: { kind: 'status', status: 502, body: HTML } })
 *   await until(() => outage.hits >= 5)
 *   outage.remove()
 *
 * Faults: an answer with any status and body (500 JSON, an HTML error page, 413, 431, 404),
 * 429 with Retry-After, a reset connection, a request accepted and never answered, and
 * refusing connections altogether (`refuseConnections()`: the port is closed).
 */
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export type ProxyFault =
  | { kind: 'status'; status: number; body?: string; contentType?: string }
  | { kind: 'rateLimit' }
  | { kind: 'reset' }
  | { kind: 'hang' }

export interface ProxyRuleSpec {
  /** Only requests with this method (default: any). */
  method?: string
  /** Only requests whose path (query excluded) matches (default: any). */
  path?: RegExp
  fault: ProxyFault
  /** Applies to this many requests, then stops matching (default: until removed). */
  count?: number
}

export interface ProxyRule {
  /** Requests this rule answered (or dropped, or left hanging). */
  readonly hits: number
  remove(): void
}

export interface ProxiedRequest {
  method: string
  path: string
  at: number
  /** The fault applied, or 'forwarded' / 'refused-upstream'. */
  outcome: string
}

export interface FaultProxy {
  url: string
  add(rule: ProxyRuleSpec): ProxyRule
  clear(): void
  requests: ProxiedRequest[]
  /** Closes the port (connection refused) until acceptConnections(). */
  refuseConnections(): Promise<void>
  acceptConnections(): Promise<void>
  /** Hung requests are answered by nobody; this ends their sockets. */
  close(): Promise<void>
}

/** A proxy's typical HTML error page (Cloudflare, nginx): what a 5xx often looks like. */
export const HTML_ERROR_PAGE =
  '<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1><p>The origin did not answer.</p></body></html>'

interface ActiveRule {
  spec: ProxyRuleSpec
  hits: number
  removed: boolean
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target)
  const rules: ActiveRule[] = []
  const requests: ProxiedRequest[] = []
  const sockets = new Set<Socket>()

  const matching = (method: string, path: string): ActiveRule | undefined =>
    rules.find(
      rule =>
        !rule.removed &&
        (rule.spec.count === undefined || rule.hits < rule.spec.count) &&
        (!rule.spec.method || rule.spec.method === method) &&
        (!rule.spec.path || rule.spec.path.test(path))
    )

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET'
    const rawUrl = req.url ?? '/'
    const path = rawUrl.split('?')[0]
    const record: ProxiedRequest = { method, path, at: Date.now(), outcome: 'forwarded' }
    requests.push(record)
    const rule = matching(method, path)
    if (rule) {
      rule.hits++
      const fault = rule.spec.fault
      record.outcome = fault.kind === 'status' ? `status ${fault.status}` : fault.kind
      switch (fault.kind) {
        case 'reset':
          req.socket.destroy()
          return
        case 'hang':
          // Read the request, then never answer: the socket stays open until the client gives up.
          req.resume()
          return
        case 'rateLimit':
          req.resume()
          res.writeHead(429, {
            'Content-Type': 'application/json',
            'Retry-After': '1',
            'X-RateLimit-Limit': '20',
            'X-RateLimit-Remaining': '0'
          })
          res.end(JSON.stringify({ error: 'Rate limit exceeded', code: 'RATE_LIMITED' }))
          return
        case 'status': {
          req.resume()
          const body =
            fault.body ?? JSON.stringify({ error: 'Injected fault', code: 'INTERNAL_ERROR' })
          res.writeHead(fault.status, {
            'Content-Type':
              fault.contentType ?? (fault.body === undefined ? 'application/json' : 'text/html')
          })
          res.end(body)
          return
        }
      }
    }
    const forward = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method,
        path: rawUrl,
        headers: { ...req.headers, host: upstream.host }
      },
      answer => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      }
    )
    forward.on('error', () => {
      record.outcome = 'refused-upstream'
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
    req.pipe(forward)
  })
  server.keepAliveTimeout = 30_000
  server.on('connection', socket => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
  const stop = () =>
    new Promise<void>(resolve => {
      server.close(() => resolve())
      for (const socket of sockets) socket.destroy()
    })

  await listen(0)
  const port = (server.address() as AddressInfo).port

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    add(spec) {
      const rule: ActiveRule = { spec, hits: 0, removed: false }
      rules.push(rule)
      return {
        get hits() {
          return rule.hits
        },
        remove() {
          rule.removed = true
        }
      }
    },
    clear() {
      for (const rule of rules) rule.removed = true
    },
    refuseConnections: stop,
    acceptConnections: () => listen(port),
    close: async () => {
      if (server.listening) await stop()
      else for (const socket of sockets) socket.destroy()
    }
  }
}
