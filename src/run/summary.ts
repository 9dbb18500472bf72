import { markdownCode, markdownLiteral } from '../common/escape.js'
import type { LostRunner } from '../common/runner-lost.js'
import { capSummary } from '../common/summary-budget.js'

/** The per-runner job summary: what ran here, how long it waited, where its log is. */
export interface JobResult {
  jobId: string
  /** carried: an earlier attempt's success this runner carried into this attempt's run. */
  status: 'success' | 'failed' | 'already-complete' | 'skipped' | 'blocked' | 'carried'
  durationMs: number
  waitMs: number
  attempts: number
  tookOver: boolean
  logRef?: string
  detail?: string
  /** The attempt in which the job was executed, when it was carried over from there. */
  carriedFrom?: number
  /** Runners lost mid-job: this job's own (failed), or upstream ones (blocked). */
  lostRunners?: LostRunner[]
  /** When this runner's execution of the job ended (epoch ms); only for jobs it executed and reported. */
  endedAt?: number
}

/** Below GitHub's 1 MiB step summary limit, with room for the note. */
export const RUN_SUMMARY_BUDGET_BYTES = 900_000

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

export function renderRunSummary(
  runId: string,
  runnerId: string,
  results: readonly JobResult[],
  requests: { sent: number; rateLimited: number }
): string {
  const lines = [
    `## orun run ${markdownCode(runId)}`,
    '',
    `Runner ${markdownCode(runnerId)}: ${requests.sent} backend requests, ${requests.rateLimited} rate-limited.`,
    '',
    '| job | status | duration | waited | took over | log | detail |',
    '|---|---|---|---|---|---|---|'
  ]
  // Rows within the budget (a pool worker may run thousands of jobs with long ids), then a note.
  let size = lines.reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0)
  for (const [index, r] of results.entries()) {
    const row = `| ${markdownCode(r.jobId, true)} | ${r.carriedFrom ? `${r.status} (from attempt ${r.carriedFrom})` : r.status} | ${seconds(r.durationMs)} | ${seconds(r.waitMs)} | ${r.tookOver ? 'yes' : 'no'} | ${markdownCode(r.logRef ?? '', true)} | ${markdownLiteral(r.detail ?? '', true)} |`
    size += Buffer.byteLength(row) + 1
    if (size > RUN_SUMMARY_BUDGET_BYTES) {
      lines.push(
        '',
        `…and ${results.length - index} more jobs: the summary is size-limited (GitHub's 1 MiB). The step's job-results output lists every job.`
      )
      break
    }
    lines.push(row)
  }
  return capSummary(lines.join('\n') + '\n')
}

/** One status for the whole step: a failure anywhere wins, then a block. */
export function overallStatus(results: readonly JobResult[]): JobResult['status'] {
  const statuses = new Set(results.map(r => r.status))
  if (statuses.has('failed')) return 'failed'
  if (statuses.has('blocked')) return 'blocked'
  if (results.length && results.every(r => r.status === 'already-complete'))
    return 'already-complete'
  if (results.length && results.every(r => r.status === 'skipped')) return 'skipped'
  return 'success'
}
