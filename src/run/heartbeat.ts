import type { BackendClient } from '../backend/client.js'
import { errorMessage } from '../common/errors.js'

/**
 * Proves to the backend that this runner still owns its running job. An
 * `abort` answer means the lease is gone (another runner took over, or the
 * job is no longer running): the caller must stop the job and send no update.
 */
export interface Heartbeat {
  stop(): void
  readonly aborted: boolean
  readonly beats: number
}

export function startHeartbeat(options: {
  client: BackendClient
  runId: string
  jobId: string
  runnerId: string
  intervalMs: number
  onAbort: () => void
  warn: (message: string) => void
  /** The runner is stopping: no beat retries past it. */
  cancel?: AbortSignal
}): Heartbeat {
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const state = { aborted: false, beats: 0 }
  // Ends a beat still retrying when the job ends, and any beat when the runner is stopping.
  const ended = new AbortController()
  const onCancel = () => ended.abort()
  options.cancel?.addEventListener('abort', onCancel, { once: true })
  // A beat retries for about two intervals, then leaves it to the next one: the takeover
  // window (300 s) allows several misses.
  const budgetMs = Math.min(2 * options.intervalMs, 60_000)
  const beat = async () => {
    try {
      const answer = await options.client.heartbeat(
        options.runId,
        options.jobId,
        options.runnerId,
        { budgetMs, signal: ended.signal }
      )
      state.beats++
      if (!answer.ok || answer.abort) {
        state.aborted = true
        stopped = true
        options.onAbort()
        return
      }
    } catch (error) {
      // The client already retried; one missed beat is harmless within the takeover window.
      if (!ended.signal.aborted)
        options.warn(`Heartbeat for ${options.jobId} failed: ${errorMessage(error)}`)
    }
    if (!stopped) timer = setTimeout(beat, options.intervalMs)
  }
  timer = setTimeout(beat, options.intervalMs)
  return {
    stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      ended.abort()
      options.cancel?.removeEventListener('abort', onCancel)
    },
    get aborted() {
      return state.aborted
    },
    get beats() {
      return state.beats
    }
  }
}
