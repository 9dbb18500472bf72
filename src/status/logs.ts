import type { BackendClient } from '../backend/client.js'
import { BackendError } from '../backend/client.js'
import { errorMessage } from '../common/errors.js'

/**
 * The last lines of each failed job's stored log (already redacted by the run
 * action when it uploaded it). One request per log, one at a time: they share
 * the repository's rate limit with every runner, so a huge failure fetches
 * only the first MAX_FAILED_LOGS and says so.
 */
export const MAX_FAILED_LOGS = 10
export const TAIL_LINES = 40
const MAX_LINE_CHARS = 400

export type LogTail = { text: string } | { missing: string }

export interface LogTails {
  tails: Map<string, LogTail>
  /** Failed jobs whose log was not fetched (over the cap). */
  notFetched: number
}

export async function fetchLogTails(
  client: BackendClient,
  runId: string,
  failedJobIds: readonly string[]
): Promise<LogTails> {
  const tails = new Map<string, LogTail>()
  for (const jobId of failedJobIds.slice(0, MAX_FAILED_LOGS)) {
    try {
      tails.set(jobId, { text: tailOf(await client.readLog(runId, jobId)) })
    } catch (error) {
      const missing =
        error instanceof BackendError && error.status === 404
          ? 'no log was stored for this job'
          : `its log could not be read: ${error instanceof BackendError ? error.describe() : errorMessage(error)}`
      tails.set(jobId, { missing })
    }
  }
  return { tails, notFetched: Math.max(0, failedJobIds.length - MAX_FAILED_LOGS) }
}

/** The last TAIL_LINES non-empty-tailed lines, each cut to a readable width. */
export function tailOf(log: string): string {
  const lines = log.replace(/\r\n?/g, '\n').replace(/\n+$/, '').split('\n')
  return lines
    .slice(-TAIL_LINES)
    .map(line => (line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line))
    .join('\n')
}
