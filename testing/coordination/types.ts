/** The public types of the local coordination server (re-exported by ../coordination-server.ts). */

export interface Identity {
  repository: string
  repository_id: string
  repository_owner: string
  repository_owner_id: string
  actor: string
}

export const defaultIdentity: Identity = {
  repository: 'acme/monorepo',
  repository_id: '1001',
  repository_owner: 'acme',
  repository_owner_id: '2002',
  actor: 'octocat'
}

export type RouteName =
  | 'health'
  | 'createRun'
  | 'getRun'
  | 'claim'
  | 'heartbeat'
  | 'update'
  | 'runnable'
  | 'listJobs'
  | 'jobStatus'
  | 'uploadLog'
  | 'readLog'
  | 'token'
  | 'jwks'
  | 'unknown'

export type Fault =
  | { kind: 'status'; status: number; count: number; body?: string; contentType?: string }
  | { kind: 'delay'; ms: number; count: number }
  | { kind: 'drop'; count: number }
  | { kind: 'rateLimit'; count: number }

export interface RecordedRequest {
  method: string
  path: string
  route: RouteName
  /** 0 when the socket was dropped without an answer */
  status: number
  at: number
  namespace?: string
  runnerId?: string
}

export interface CoordinationServerOptions {
  audience?: string
  /** Per-request latency, uniformly drawn; false for none. Default 15-40 ms, as measured. */
  latencyMs?: { min: number; max: number } | false
  /** How long a freshly created run stays invisible to every route but create. Default 250 ms. */
  initLagMs?: number
  /** How long a log read still answers the previous version after an upload. Default 1000 ms. */
  logVisibilityMs?: number
  maxUrlBytes?: number
  maxBodyBytes?: number
  heartbeatTimeoutMs?: number
  rateLimit?: { burst: number; perSecond: number } | false
  tokenLifetimeSeconds?: number
  sessionTokens?: string[]
  port?: number
  /**
   * The server's clock (epoch ms), default Date.now: heartbeat ages, token expiry, rate-limit
   * refills and timestamps read it, so a test can move time on instead of sleeping.
   */
  now?: () => number
}

export interface StoredJobView {
  jobId: string
  status: string
  runnerId: string | null
  startedAt: string | null
  finishedAt: string | null
  lastError: string | null
  claims: number
}

export interface CoordinationServer {
  url: string
  tokenEnv(identity?: Partial<Identity>): {
    ACTIONS_ID_TOKEN_REQUEST_URL: string
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: string
  }
  mintToken(opts?: MintTokenOptions): Promise<string>
  tokensMinted: number
  requests: RecordedRequest[]
  inject(route: RouteName | '*', fault: Fault): void
  clearFaults(): void
  setOptions(
    patch: Partial<
      Pick<
        CoordinationServerOptions,
        | 'heartbeatTimeoutMs'
        | 'rateLimit'
        | 'tokenLifetimeSeconds'
        | 'latencyMs'
        | 'initLagMs'
        | 'logVisibilityMs'
      >
    >
  ): void
  /** read-only view for tests/demo: the stored jobs of a run */
  jobsOf(runId: string, namespace?: string): StoredJobView[]
  /** The log as stored by the last upload, without the read-after-write lag of `GET logs`. */
  storedLog(runId: string, jobId: string, namespace?: string): string | undefined
  /** Resolves once a created run is visible to every route (its init lag has passed). */
  whenVisible(runId: string, namespace?: string): Promise<void>
  /** Removes a run, as the service's cleanup does about 24 h after it finished. */
  deleteRun(runId: string, namespace?: string): boolean
  close(): Promise<void>
}

export interface MintTokenOptions {
  identity?: Partial<Identity>
  audience?: string
  issuer?: string
  expiresInSeconds?: number
  kid?: string
  /** merged last: overrides any claim; a claim set to undefined is left out */
  claims?: Record<string, unknown>
  signWithForeignKey?: boolean
}

/**
 * For protocol-level tests that count requests exactly: no lag before a new run or
 * a new log is visible. Tests of whole runners keep the service's lags (the default).
 */
export const IMMEDIATE_CONSISTENCY = { initLagMs: 0, logVisibilityMs: 0 } as const

export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com'
/** The claims that identify a repository; the server's namespace is repository_id. */
export const IDENTITY_KEYS = [
  'repository',
  'repository_id',
  'repository_owner',
  'repository_owner_id',
  'actor'
] as const
