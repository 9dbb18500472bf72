import * as core from '@actions/core'

/**
 * What the post step needs to finish a job the main step claimed but did not
 * finish reporting (cancelled, crashed, killed, or the backend was down):
 * saved through GITHUB_STATE on every change.
 */
export interface InFlightJob {
  jobId: string
  spoolFile: string
  /** The job's result, saved as soon as it is known: the post step delivers exactly this. */
  outcome?: { status: 'success' | 'failed'; error?: string }
  /** The backend holds the result: only the log may be left to upload. */
  reported?: boolean
  /**
   * The sessions and process groups orun and its steps run in, while they run: the post
   * step stops whatever is left in them when this process died first.
   */
  orunProcesses?: { sessions: number[]; groups: number[] }
  /**
   * A claim was sent and no grant seen yet: the backend may have granted it to a process that
   * died before the answer came. The post step settles it; the backend refuses the update when
   * the claim never landed, and the post step then leaves the job alone.
   */
  unconfirmed?: boolean
}

export interface InFlight {
  backendUrl: string
  audience: string
  runId: string
  runnerId: string
  jobs: InFlightJob[]
}

const KEY = 'orun-in-flight'

export function saveInFlight(state: InFlight): void {
  core.saveState(KEY, JSON.stringify(state))
}

export function loadInFlight(): InFlight | undefined {
  const raw = core.getState(KEY)
  return raw ? (JSON.parse(raw) as InFlight) : undefined
}

/** Changes one job's entry and saves the state at once. */
export function updateInFlightJob(
  state: InFlight,
  jobId: string,
  change: Partial<Omit<InFlightJob, 'jobId'>>
): void {
  const entry = state.jobs.find(job => job.jobId === jobId)
  if (!entry) return
  Object.assign(entry, change)
  saveInFlight(state)
}

/** Adds a job's entry, or replaces the one it has, and saves the state at once. */
export function trackInFlightJob(state: InFlight, entry: InFlightJob): void {
  state.jobs = [...state.jobs.filter(job => job.jobId !== entry.jobId), entry]
  saveInFlight(state)
}

/** Drops a job the post step has nothing left to do for. */
export function dropInFlightJob(state: InFlight, jobId: string): void {
  state.jobs = state.jobs.filter(job => job.jobId !== jobId)
  saveInFlight(state)
}
