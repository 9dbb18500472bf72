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

/** Drops a job the post step has nothing left to do for. */
export function dropInFlightJob(state: InFlight, jobId: string): void {
  state.jobs = state.jobs.filter(job => job.jobId !== jobId)
  saveInFlight(state)
}
