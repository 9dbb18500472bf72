import * as core from '@actions/core'

/**
 * What the post step needs to finish a job the main step claimed but never
 * reported (cancelled or crashed): saved through GITHUB_STATE on every change.
 */
export interface InFlight {
  backendUrl: string
  audience: string
  runId: string
  runnerId: string
  jobs: Array<{ jobId: string; spoolFile: string }>
}

const KEY = 'orun-in-flight'

export function saveInFlight(state: InFlight): void {
  core.saveState(KEY, JSON.stringify(state))
}

export function loadInFlight(): InFlight | undefined {
  const raw = core.getState(KEY)
  return raw ? (JSON.parse(raw) as InFlight) : undefined
}
