/** The Worker's routes: which path and method is which route. */
import type { RouteName } from './types.js'

export interface RouteMatch {
  route: RouteName
  /** false when the path is known but the method is not */
  methodAllowed: boolean
  rawParams: string[]
}

const ID = '([^/]+)'
const ROUTE_TABLE: Array<{ pattern: RegExp; methods: Partial<Record<string, RouteName>> }> = [
  { pattern: /^\/$/, methods: { GET: 'health' } },
  { pattern: /^\/v1\/runs$/, methods: { POST: 'createRun' } },
  { pattern: new RegExp(`^/v1/runs/${ID}$`), methods: { GET: 'getRun' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/jobs$`), methods: { GET: 'listJobs' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/runnable$`), methods: { GET: 'runnable' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/jobs/${ID}/status$`), methods: { GET: 'jobStatus' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/jobs/${ID}/claim$`), methods: { POST: 'claim' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/jobs/${ID}/heartbeat$`), methods: { POST: 'heartbeat' } },
  { pattern: new RegExp(`^/v1/runs/${ID}/jobs/${ID}/update$`), methods: { POST: 'update' } },
  {
    pattern: new RegExp(`^/v1/runs/${ID}/logs/${ID}$`),
    methods: { POST: 'uploadLog', GET: 'readLog' }
  },
  { pattern: /^\/_oidc\/token$/, methods: { GET: 'token' } },
  { pattern: /^\/\.well-known\/jwks$/, methods: { GET: 'jwks' } }
]

/** Routes any session token may use (both builds); every other authenticated route is OIDC-only. */
export const SESSION_ROUTES = new Set<RouteName>(['getRun', 'listJobs', 'jobStatus', 'readLog'])

/** The job routes that the 2026-05-08 build opens to a CLI session as well as to OIDC. */
export const OIDC_OR_CLI_SESSION_ROUTES = new Set<RouteName>([
  'claim',
  'update',
  'heartbeat',
  'runnable',
  'uploadLog'
])

export function matchRoute(method: string, rawPath: string): RouteMatch {
  // `/` is answered only to GET; the Worker has no other route there, so POST / is a 404.
  for (const entry of ROUTE_TABLE) {
    const m = entry.pattern.exec(rawPath)
    if (!m) continue
    const route = entry.methods[method]
    if (route) return { route, methodAllowed: true, rawParams: m.slice(1) }
    if (rawPath === '/') return { route: 'unknown', methodAllowed: true, rawParams: [] }
    const anyRoute = Object.values(entry.methods)[0] ?? 'unknown'
    return { route: anyRoute, methodAllowed: false, rawParams: m.slice(1) }
  }
  return { route: 'unknown', methodAllowed: true, rawParams: [] }
}
