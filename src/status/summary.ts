import { capSummary, fitSections } from '../common/summary-budget.js'
import {
  OUTCOME_WORDS,
  chartsAggregated,
  dagChart,
  formatDuration,
  listSome,
  outcomeText,
  timelineChart
} from './charts.js'
import { codeBlock, markdownText } from '../common/escape.js'
import { RERUN_AFTER_RUNNER_LOST, runnerLostText } from '../common/runner-lost.js'
import type { GitHubJob } from './links.js'
import { TAIL_LINES, type LogTails } from './logs.js'
import {
  OUTCOMES,
  criticalPath,
  type JobView,
  type Outcome,
  type RunView,
  type Verdict
} from './outcome.js'

/**
 * The status summary: the page a platform engineer opens first. Verdict and
 * totals, the DAG by outcome, the timeline, each failure with its error and
 * log tail, then every job in a table. GitHub refuses step summaries over
 * 1 MiB, so the failure details and the table stop at a byte budget, saying so.
 */
export const SUMMARY_BUDGET_BYTES = 900_000
export const MAX_FAILURE_DETAILS = 50
const MAX_ERROR_CHARS = 2000

export interface StatusReport {
  view: RunView
  planId: string
  /** GitHub job that ran each orun job, by orun job id. */
  links: ReadonlyMap<string, GitHubJob>
  tails: LogTails
  /** Plain sentences shown under the totals (no links, logs not fetched, ...). */
  notes: readonly string[]
  /** This workflow run attempt (GITHUB_RUN_ATTEMPT). */
  attempt: number
  now: number
  /** The "Cost" section (cost.ts), shown after the timeline. */
  cost?: readonly string[]
}

const HEADINGS: Record<Verdict, string> = {
  success: '✅ orun run succeeded',
  failed: '❌ orun run failed',
  incomplete: '⚠️ orun run incomplete'
}

const bytes = (text: string) => Buffer.byteLength(text) + 1

export function renderStatusSummary(report: StatusReport): string {
  const { view } = report
  const lines: string[] = [
    `## ${HEADINGS[view.verdict]}`,
    '',
    headline(report),
    '',
    ...totals(view),
    ''
  ]
  const verdictLine = problemLine(view)
  if (verdictLine) lines.push(markdownText(verdictLine), '')
  for (const note of report.notes) lines.push(`> ${markdownText(note)}`, '>')
  if (report.notes.length) lines.splice(lines.length - 1, 1, '')

  // The pictures share a budget: per job, else per environment, else a note.
  const critical = criticalPath(view)
  const tooBig = (what: string) =>
    `The ${what} is left out: with these names it would not fit GitHub's 1 MiB summary limit.`
  const dag = (aggregated: boolean) => [
    '### DAG',
    '',
    '```mermaid',
    ...dagChart(view, aggregated),
    '```',
    ''
  ]
  const timelineSection = (aggregated: boolean) => {
    const timeline = timelineChart(view, critical, report.now, aggregated)
    if (!timeline.length) return []
    const section = [
      '### Timeline',
      '',
      'Backend start and finish times. Red: failed; blue: the critical path; grey: the rest.',
      '',
      '```mermaid',
      ...timeline,
      '```',
      ''
    ]
    if (critical.length > 1 && !aggregated) {
      const span = critical.at(-1)!.finishedAt! - critical[0].startedAt!
      section.push(
        `Critical path (${formatDuration(Math.max(0, span))}): ${critical.map(job => markdownText(job.name)).join(' → ')}`,
        ''
      )
    }
    return section
  }
  const smaller = (what: string) =>
    `${what} (drawn per environment: per job it would not fit GitHub's 1 MiB summary limit).`
  const [dagLines, timelineLines] = fitSections(
    [
      [
        dag(chartsAggregated(view)),
        [...dag(true), smaller('The DAG above is'), ''],
        ['### DAG', '', tooBig('DAG'), '']
      ],
      [
        timelineSection(chartsAggregated(view)),
        [...timelineSection(true), smaller('The timeline above is'), ''],
        [tooBig('timeline'), '']
      ]
    ],
    SUMMARY_BUDGET_BYTES / 3
  )
  lines.push(...dagLines, ...timelineLines)

  lines.push(...(report.cost ?? []))

  let size = lines.reduce((sum, line) => sum + bytes(line), 0)
  const failed = view.jobs.filter(job => job.outcome === 'failed')
  if (failed.length) {
    lines.push('### Failed jobs', '')
    for (const [index, job] of failed.entries()) {
      const block = failureDetails(job, report)
      const blockSize = bytes(block)
      if (index >= MAX_FAILURE_DETAILS || size + blockSize > SUMMARY_BUDGET_BYTES / 2) {
        lines.push(
          `…and ${failed.length - index} more failed jobs: their errors are in the table below and in their own logs.`,
          ''
        )
        break
      }
      lines.push(block, '')
      size += blockSize + 1
    }
  }

  lines.push(
    '### Jobs',
    '',
    '| check | status | duration | waited | runner | attempt | log |',
    '|---|---|---|---|---|---|---|'
  )
  size = lines.reduce((sum, line) => sum + bytes(line), 0)
  const rows = [...view.jobs].sort(
    (a, b) => OUTCOMES.indexOf(a.outcome) - OUTCOMES.indexOf(b.outcome)
  )
  for (const [index, job] of rows.entries()) {
    const row = tableRow(job, report)
    size += bytes(row)
    if (size > SUMMARY_BUDGET_BYTES) {
      lines.push(
        '',
        `…and ${rows.length - index} more jobs (the summary is size-limited; problems are listed first). The step's outputs list every failed, blocked and not-run job.`
      )
      break
    }
    lines.push(row)
  }
  return capSummary(lines.join('\n') + '\n')
}

function headline({ view, planId }: StatusReport): string {
  const parts = [`Run ${markdownText(view.runId)}`, `plan ${markdownText(planId)}`]
  parts.push(`${view.jobs.length} job${view.jobs.length === 1 ? '' : 's'}`)
  const created = view.run?.createdAt ? Date.parse(view.run.createdAt) : NaN
  const finishes = view.jobs.flatMap(job => (job.finishedAt === undefined ? [] : [job.finishedAt]))
  if (!Number.isNaN(created) && finishes.length) {
    const last = Math.max(...finishes)
    parts.push(
      `${formatDuration(Math.max(0, last - created))} from the run's creation to its last result`
    )
  } else if (!view.run) {
    parts.push('no run on the backend')
  }
  if (view.run?.status) parts.push(`backend status ${markdownText(String(view.run.status))}`)
  return parts.join(' · ')
}

/** Totals read good news first. */
const TOTALS_ORDER: readonly Outcome[] = [
  'success',
  'carried',
  'failed',
  'blocked',
  'not-run',
  'running',
  'skipped'
]

function totals(view: RunView): string[] {
  const shown = TOTALS_ORDER.filter(
    outcome => view.counts[outcome] || outcome === 'success' || outcome === 'failed'
  )
  return [
    `| ${shown.map(outcome => OUTCOME_WORDS[outcome]).join(' | ')} |`,
    `|${shown.map(() => '---:').join('|')}|`,
    `| ${shown.map(outcome => view.counts[outcome]).join(' | ')} |`
  ]
}

/** "2 failed (a, b); 3 blocked (c, d, e); 1 never ran (f)", or '' when nothing went wrong. */
export function problemLine(view: RunView, shown = 5): string {
  const ids = (outcome: JobView['outcome'][]) =>
    view.jobs.filter(job => outcome.includes(job.outcome)).map(job => job.id)
  const parts: string[] = []
  const lost = view.jobs.filter(job => job.runnerLost).map(job => job.id)
  const failed = ids(['failed']).filter(id => !lost.includes(id))
  const blocked = ids(['blocked'])
  const notRun = ids(['not-run', 'running'])
  if (failed.length) parts.push(`${failed.length} failed (${listSome(failed, shown)})`)
  if (lost.length) parts.push(`${lost.length} runner lost (${listSome(lost, shown)})`)
  if (blocked.length) parts.push(`${blocked.length} blocked (${listSome(blocked, shown)})`)
  if (notRun.length)
    parts.push(`${notRun.length} never ran or did not finish (${listSome(notRun, shown)})`)
  return parts.join('; ')
}

function failureDetails(job: JobView, report: StatusReport): string {
  const title = job.name === job.id ? job.id : `${job.name} (${job.id})`
  const link = report.links.get(job.id)?.htmlUrl
  if (job.runnerLost) {
    const text = markdownText(capitalized(runnerLostText({ runnerId: job.runnerId ?? null })))
    return [
      `<details><summary>✗ ${markdownText(title)}: runner lost</summary>`,
      '',
      link && safeUrl(link) ? `${text}: [its GitHub job](${link}).` : `${text}.`,
      '',
      markdownText(RERUN_AFTER_RUNNER_LOST),
      '',
      '</details>'
    ].join('\n')
  }
  const parts = [`<details><summary>✗ ${markdownText(title)}</summary>`, '']
  const error = job.error?.trim()
  if (error) {
    const cut =
      error.length > MAX_ERROR_CHARS ? `${error.slice(0, MAX_ERROR_CHARS)}\n… (cut)` : error
    parts.push('Error reported to the backend:', '', codeBlock(cut), '')
  } else {
    parts.push('No error text was reported.', '')
  }
  const tail = report.tails.tails.get(job.id)
  if (tail && 'text' in tail) {
    parts.push(`Last ${TAIL_LINES} lines of its log:`, '', codeBlock(tail.text), '')
  } else if (tail) {
    parts.push(`No log tail: ${markdownText(tail.missing)}.`, '')
  } else {
    parts.push("Log not fetched (only the first failed jobs' logs are read).", '')
  }
  if (link && safeUrl(link)) parts.push(`[Full log on GitHub](${link})`, '')
  parts.push('</details>')
  return parts.join('\n')
}

function tableRow(job: JobView, report: StatusReport): string {
  const gh = report.links.get(job.id)
  const name =
    job.name === job.id
      ? markdownText(job.id)
      : `${markdownText(job.name)}<br><sub>${markdownText(job.id)}</sub>`
  const attempt =
    job.outcome === 'carried'
      ? String(job.carriedFrom ?? '–')
      : gh?.runAttempt
        ? String(gh.runAttempt)
        : job.runnerId
          ? String(report.attempt)
          : '–'
  const link = gh?.htmlUrl && safeUrl(gh.htmlUrl) ? `[log](${gh.htmlUrl})` : '–'
  const cells = [
    name,
    markdownText(outcomeText(job, false)),
    job.durationMs === undefined ? '–' : formatDuration(job.durationMs),
    job.waitedMs === undefined ? '–' : formatDuration(job.waitedMs),
    job.runnerId ? markdownText(job.runnerId) : '–',
    attempt,
    link
  ]
  return `| ${cells.join(' | ')} |`
}

const capitalized = (text: string) => text.charAt(0).toUpperCase() + text.slice(1)

/** Only plain http(s) addresses without characters that could end a markdown link. */
function safeUrl(url: string): boolean {
  return /^https?:\/\/[^\s()<>[\]"'`]+$/.test(url)
}
