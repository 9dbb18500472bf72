import * as core from '@actions/core'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Plan } from '../plan/model.js'
import { errorMessage } from './errors.js'
import { makeTempDir } from './runner.js'

/**
 * The record of what each runner did, kept on GitHub's side as a small workflow
 * artifact per runner (and attempt), so that a later attempt of the same
 * workflow run can read it when the backend no longer holds the run (both
 * builds delete ended runs after about 24 h; GitHub allows re-runs for 30 days).
 *
 * Artifacts of earlier attempts are visible to later attempts of the same
 * workflow run (ListArtifacts is scoped to the workflow run, and names are
 * unique across its attempts), need no permission beyond the runtime token
 * every step has, and cost GitHub requests, not backend ones.
 *
 * The name says most of what a re-run needs, so one list call answers it:
 *   orun-results_<run id>_<runner>_s<succeeded>f<failed>c<carried>
 * with job positions in the plan's order as ranges (`s0-3.7f5c`). When the
 * positions do not fit in a name, the summary reads `x` and the reader downloads
 * that artifact: its one file, results.json, holds everything (times, errors).
 */

export const RECORD_PREFIX = 'orun-results_'
const RECORD_FILE = 'results.json'
/** GitHub allows re-runs for 30 days: keep the record as long, or the repository's retention if shorter. */
export const RECORD_RETENTION_DAYS = 30
/** Names are kept well under what GitHub stores. */
const MAX_NAME_LENGTH = 200
/** Artifact names may not hold these characters. */
const forbidden = /[":<>|*?\r\n\\/]/g

export type RecordedStatus = 'success' | 'failed' | 'blocked' | 'carried' | 'skipped'

export interface RecordedJob {
  jobId: string
  status: RecordedStatus
  /** The attempt in which it was executed (for carried jobs: the earlier one). */
  attempt: number
  runner: string
  startedAt?: string
  endedAt?: string
  error?: string
}

export interface ResultsRecord {
  version: 1
  runId: string
  planId: string
  attempt: number
  runner: string
  jobs: RecordedJob[]
}

/** One runner's record as listed: what the name says, and the full record once read. */
export interface ListedRecord {
  name: string
  id: number
  runId: string
  runner: string
  /** Jobs by outcome, from the name; undefined when the name could not hold them. */
  succeeded?: string[]
  failed?: string[]
  /** Earlier successes this runner carried into its attempt's run. */
  carried?: string[]
}

export const recordSafe = (text: string) => text.replace(forbidden, '-')

export function recordName(record: ResultsRecord, plan: Plan): string {
  const position = new Map(plan.order.map((job, index) => [job.id, index]))
  const positions = (statuses: RecordedStatus[]) =>
    ranges(
      record.jobs
        .filter(job => statuses.includes(job.status) && position.has(job.jobId))
        .map(job => position.get(job.jobId)!)
    )
  const head = `${RECORD_PREFIX}${recordSafe(record.runId)}_${recordSafe(record.runner)}_`
  const summary = `s${positions(['success'])}f${positions(['failed'])}c${positions(['carried'])}`
  return head.length + summary.length <= MAX_NAME_LENGTH ? head + summary : `${head}x`
}

function ranges(values: number[]): string {
  const sorted = [...new Set(values)].sort((a, b) => a - b)
  const parts: string[] = []
  for (let i = 0; i < sorted.length;) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++
    parts.push(j > i ? `${sorted[i]}-${sorted[j]}` : `${sorted[i]}`)
    i = j + 1
  }
  return parts.join('.')
}

function parseRanges(text: string): number[] {
  if (!text) return []
  return text.split('.').flatMap(part => {
    const [from, to] = part.split('-').map(Number)
    return to === undefined ? [from] : Array.from({ length: to - from + 1 }, (_, k) => from + k)
  })
}

/** What a record's name says, for a record of `runId`; undefined for any other artifact. */
export function parseRecordName(
  name: string,
  runId: string,
  plan: Plan
): Omit<ListedRecord, 'id'> | undefined {
  const head = `${RECORD_PREFIX}${recordSafe(runId)}_`
  if (!name.startsWith(head)) return undefined
  const rest = name.slice(head.length)
  const summary = /_(?:s([\d.-]*)f([\d.-]*)c([\d.-]*)|x)$/.exec(rest)
  if (!summary) return undefined
  const runner = rest.slice(0, summary.index)
  if (summary[0] === '_x') return { name, runId, runner }
  const ids = (text: string) =>
    parseRanges(text)
      .map(index => plan.order[index]?.id)
      .filter((id): id is string => id !== undefined)
  return {
    name,
    runId,
    runner,
    succeeded: ids(summary[1]),
    failed: ids(summary[2]),
    carried: ids(summary[3])
  }
}

/** Why the record cannot be read or written here, or undefined when it can. */
export function recordUnavailable(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!env.ACTIONS_RUNTIME_TOKEN || !env.ACTIONS_RESULTS_URL)
    return 'ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL are not set (not a GitHub Actions runner, or a container step without them)'
  return undefined
}

async function artifactClient() {
  const { DefaultArtifactClient } = await import('@actions/artifact')
  return new DefaultArtifactClient()
}

/**
 * Uploads one runner's record. Never fails the step: a record that cannot be
 * written only means a re-run after the backend deleted the run cannot carry
 * these jobs (the warning says so).
 */
export async function writeResultsRecord(
  record: ResultsRecord,
  plan: Plan,
  warn: (message: string) => void
): Promise<string | undefined> {
  if (!record.jobs.length) return undefined
  const unavailable = recordUnavailable()
  if (unavailable) {
    core.info(`The results record is not kept: ${unavailable}.`)
    return undefined
  }
  const name = recordName(record, plan)
  try {
    const dir = makeTempDir('orun-record-')
    mkdirSync(dir, { recursive: true })
    const file = join(dir, RECORD_FILE)
    writeFileSync(file, JSON.stringify(record))
    const client = await artifactClient()
    const repositoryDays = Number(process.env.GITHUB_RETENTION_DAYS)
    await client.uploadArtifact(name, [file], dir, {
      retentionDays:
        repositoryDays > 0 ? Math.min(repositoryDays, RECORD_RETENTION_DAYS) : RECORD_RETENTION_DAYS
    })
    return name
  } catch (error) {
    warn(
      `Could not keep the results record (artifact '${name}'): ${errorMessage(error)}. ` +
        'A "Re-run failed jobs" more than a day from now may not be able to carry these jobs over.'
    )
    return undefined
  }
}

export type RecordRead = { ok: true; records: ListedRecord[] } | { ok: false; problem: string }

/** Lists the records of the given run ids: one GitHub request. */
export async function listResultsRecords(
  runIds: readonly string[],
  plan: Plan
): Promise<RecordRead> {
  const unavailable = recordUnavailable()
  if (unavailable) return { ok: false, problem: unavailable }
  try {
    const client = await artifactClient()
    const { artifacts } = await client.listArtifacts()
    const records: ListedRecord[] = []
    for (const artifact of artifacts) {
      for (const runId of runIds) {
        const parsed = parseRecordName(artifact.name, runId, plan)
        if (parsed) records.push({ ...parsed, id: artifact.id })
      }
    }
    return { ok: true, records }
  } catch (error) {
    const problem = errorMessage(error).replace(/\s+/g, ' ').trim()
    return { ok: false, problem: `listing this workflow run's artifacts failed (${problem})` }
  }
}

/** Downloads and reads records (each costs a few GitHub requests). */
export async function downloadResultsRecords(
  listed: readonly ListedRecord[],
  planId: string
): Promise<ResultsRecord[]> {
  const client = await artifactClient()
  const base = makeTempDir('orun-records-')
  const read: ResultsRecord[] = []
  for (const [index, record] of listed.entries()) {
    const dir = join(base, String(index))
    const { downloadPath } = await client.downloadArtifact(record.id, { path: dir })
    const parsed = JSON.parse(
      readFileSync(join(downloadPath ?? dir, RECORD_FILE), 'utf8')
    ) as ResultsRecord
    if (parsed.version === 1 && parsed.planId === planId) read.push(parsed)
  }
  return read
}
