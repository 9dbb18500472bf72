/** Shapes of the orun-backend coordination protocol (see backend-protocol.md). */

export type JobStatus = 'pending' | 'running' | 'success' | 'failed' | 'skipped'

export type RunStatus = 'running' | 'completed' | 'failed' | 'cancelled'

export interface BackendStep {
  stepId: string
  uses: string
  with: Record<string, unknown>
}

export interface BackendJob {
  jobId: string
  component: string
  deps: string[]
  steps: BackendStep[]
}

/** The backend's own, reduced form of an orun plan. */
export interface BackendPlan {
  checksum: string
  version: string
  createdAt: string
  jobs: BackendJob[]
}

export interface JobRecord {
  jobId: string
  component: string
  status: JobStatus
  deps: string[]
  runnerId: string | null
  startedAt: string | null
  finishedAt: string | null
  lastError: string | null
  heartbeatAt: string | null
  /** Only the job list carries it. */
  logRef?: string | null
}

export interface RunRecord {
  runId: string
  status: RunStatus
  planChecksum: string
  createdAt: string
  updatedAt: string
  jobTotal: number
  jobDone: number
  jobFailed: number
  /** The service adds more fields; they are kept as they come. */
  [extra: string]: unknown
}

export type ClaimResult =
  | {
      claimed: true
      /** The previous owner's heartbeat was older than the takeover window. */
      takeover?: boolean
      /** An ambiguous first attempt had claimed the job for us already (see BackendClient.claim). */
      recovered?: boolean
    }
  | {
      claimed: false
      currentStatus: JobStatus
      /** Some dependency has not succeeded yet: wait, then claim again. */
      depsWaiting?: boolean
      /** Some dependency failed: do not run. */
      depsBlocked?: boolean
    }

export interface CreateRunRequest {
  plan: BackendPlan
  /** Without it the server generates a UUID (and a retried create could make two runs). */
  runId?: string
  triggerType?: string
  actor?: string
  dryRun?: boolean
}

export interface CreateRunResult {
  runId: string
  status: RunStatus
  /** A join (200) answers the current time here, not the original creation time. */
  createdAt: string
  /** true on 201 (this call created the run), false on 200 (joined an existing run). */
  created: boolean
}
