/** The public types of the local coordination server (re-exported by ../coordination-server.ts). */

/**
 * The builds of orun-backend a user may meet (../shared/spec/backend-protocol.md, "Two builds of
 * the service"): `2026-05-02` is the service's main `46c412f`, `2026-05-08` the build orun v2.54
 * embeds (`faf9e40`). A deployment does not say which one it runs.
 */
export const BACKEND_BUILDS = ['2026-05-02', '2026-05-08'] as const
export type BackendBuild = (typeof BACKEND_BUILDS)[number]
export const DEFAULT_BACKEND_BUILD: BackendBuild = '2026-05-02'

/** Each build's rate limit per repository, as measured. */
export const BUILD_RATE_LIMITS: Record<BackendBuild, { burst: number; perSecond: number }> = {
  '2026-05-02': { burst: 20, perSecond: 5 },
  '2026-05-08': { burst: 300, perSecond: 30 }
}

export function isBackendBuild(value: unknown): value is BackendBuild {
  return (BACKEND_BUILDS as readonly unknown[]).includes(value)
}

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
  /** Which build of the service to model; default `2026-05-02`. */
  build?: BackendBuild
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
  /** Default: the build's limit (20/5 on 2026-05-02, 300/30 on 2026-05-08). */
  rateLimit?: { burst: number; perSecond: number } | false
  /**
   * 2026-05-08: the period of each run's alarm (the heartbeat-timeout sweep, and the idle check).
   * Default 300 000 (5 min).
   */
  sweepPeriodMs?: number
  /**
   * 2026-05-08: a live run nobody has touched for this long is idle, and its next alarm drops the
   * live state (reads then come from the database copy). Default 240 000: shorter than the
   * heartbeat timeout, so an abandoned claim nobody waits on is dropped (reads `pending`) before
   * the alarm's sweep could fail it, as observed.
   */
  idleDropMs?: number
  /** Both builds: an ended run (and its logs) is deleted this long after it ended. Default 24 h. */
  deletionDelayMs?: number
  /**
   * Whether alarms and the cleanup also run by themselves (real time decides how often the server
   * looks at its clock). Default true; a test that moves the clock by hand and calls tick() sets
   * false, so nothing runs between its steps behind its back.
   */
  autoTick?: boolean
  tokenLifetimeSeconds?: number
  /** Orun CLI session tokens: read routes on both builds, job routes too on 2026-05-08. */
  sessionTokens?: string[]
  /** Dashboard session tokens: read routes only, on both builds (403 elsewhere). */
  dashboardSessionTokens?: string[]
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

/** Where a run's answers come from: the live coordinator, the database copy, or nowhere. */
export type RunPhase = 'live' | 'copy' | 'deleted'

export interface CoordinationServer {
  url: string
  /** The build this server models. */
  build: BackendBuild
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
  /** Resolves once every repository's rate-limit bucket is full again (no request meanwhile). */
  whenRateLimitRefilled(): Promise<void>
  /** Removes a run, as the service's cleanup does about 24 h after it finished. */
  deleteRun(runId: string, namespace?: string): boolean
  /**
   * 2026-05-08 only: drops a run's live state now, as its alarm does once the run is idle (reads
   * then answer the database copy); false when the run is unknown or already dropped.
   */
  dropLiveState(runId: string, namespace?: string): boolean
  /** Whether a run is served live, from the database copy (2026-05-08), or is gone. */
  runPhase(runId: string, namespace?: string): RunPhase
  /**
   * Runs the alarms and cleanups due by the server's clock. The server calls it on its own
   * (every few ms to 1 s of real time); a test that moves an injected clock calls it to not wait.
   */
  tick(): void
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
