import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'

/**
 * Did orun actually run the claimed job to success? Its exit code alone does
 * not say: orun exits 0 without running the job when it filters the job out,
 * when the job's dependencies are not completed in its own in-memory state
 * (the concurrent path), on a dry run, for a job its state holds as cached,
 * and even after a failed step when the plan's failFast is off.
 *
 * The rule (from orun's source, internal/runner/presenter.go and
 * gha_presenter.go; stable since 1.13): at the end of every run orun prints a
 * summary, `✓ Done in 1.2s` then a stats line such as `1 succeeded`, counting a
 * job as succeeded only after all its steps ran. The action's derived plan
 * holds exactly one job, so "1 succeeded" (and nothing failed or waiting) is
 * the evidence that the claimed job ran and finished. Lines of step output are
 * skipped: in GitHub Actions mode orun wraps them in `::stop-commands::<token>`
 * … `::<token>::`, so a step that prints a look-alike (a nested orun) cannot
 * count. `--json` is no help: in `orun run` it changes only scoping messages.
 */

export interface RunAccount {
  succeeded: number
  failed: number
  cached: number
  waiting: number
  /** A dry run: `◌ Preview ready`, `N selected`. */
  preview: boolean
  /** orun printed its per-job header (`job-id  <id>`) or footer for the job. */
  started: boolean
  /** The footer said `✕ <name> failed`, or an `::error::` annotation followed a step. */
  failedMarks: boolean
  /** `✓ no jobs to run`. */
  noJobs: boolean
  /** The run summary line was seen. */
  summary: boolean
}

// orun colours its output when CLICOLOR_FORCE is set.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g

/** orun's own lines: its output with ANSI colours and the raw step output removed. */
export function orunLines(output: string): string[] {
  const lines: string[] = []
  let stopToken: string | undefined
  for (const raw of output.replace(ANSI, '').split(/\r?\n/)) {
    const line = raw.trim()
    if (stopToken !== undefined) {
      if (line === `::${stopToken}::`) stopToken = undefined
      continue
    }
    const stop = /^::stop-commands::(.+)$/.exec(line)
    if (stop) {
      stopToken = stop[1]
      continue
    }
    lines.push(line)
  }
  return lines
}

export function readRunAccount(output: string, jobId: string): RunAccount {
  const account: RunAccount = {
    succeeded: 0,
    failed: 0,
    cached: 0,
    waiting: 0,
    preview: false,
    started: false,
    failedMarks: false,
    noJobs: false,
    summary: false
  }
  const lines = orunLines(output)
  lines.forEach((line, index) => {
    if (/^(✓ Done|✗ Failed) in \S+$/.test(line) || /^◌ Preview ready in \S+$/.test(line)) {
      account.summary = true
      if (line.startsWith('◌')) account.preview = true
      const stats = lines.slice(index + 1).find(next => next !== '') ?? ''
      const count = (word: string) =>
        Number(new RegExp(`(?:^|· )(\\d+) ${word}\\b`).exec(stats)?.[1] ?? 0)
      account.succeeded = count('succeeded')
      account.failed = count('failed')
      account.cached = count('cached')
      account.waiting = count('waiting')
      if (count('selected')) account.preview = true
    } else if (/^job-id\s+(.+)$/.exec(line)?.[1] === jobId) {
      account.started = true
    } else if (/^✓ .+ completed · \S+$/.test(line)) {
      account.started = true
    } else if (/^✕ .+ failed · \S+$/.test(line) || line.startsWith('::error::')) {
      account.failedMarks = true
    } else if (/^✓ no jobs to run$/.test(line)) {
      account.noJobs = true
    }
  })
  return account
}

export function ranToSuccess(account: RunAccount): boolean {
  return (
    account.summary &&
    !account.preview &&
    account.succeeded === 1 &&
    account.failed === 0 &&
    account.waiting === 0 &&
    !account.failedMarks
  )
}

export interface NonRunContext {
  jobId: string
  /** Where orun ran: a component.yaml at or above it can scope the run. */
  cwd: string
  /** The user's extra `args` for orun run. */
  extraArgs: readonly string[]
}

/**
 * Why orun exited 0 without running the job, as far as its output and the
 * checkout tell. Returns undefined when the account shows the job succeeded.
 */
export function explainNonRun(account: RunAccount, context: NonRunContext): string | undefined {
  if (ranToSuccess(account)) return undefined
  const lead = `orun exited 0 but did not run ${context.jobId} to success`
  const filters = context.extraArgs.filter(arg =>
    /^(--component|--env|-e|--all-envs|--changed|--dry-run|--concurrency)(=|$)/.test(arg)
  )
  const argsHint = filters.length
    ? ` The 'args' input passes ${filters.join(' ')}, which can filter or preview the job: remove it.`
    : ''
  if (account.preview)
    return `${lead}: it only previewed the job (a dry run).${argsHint || " Remove --dry-run from the 'args' input."}`
  if (account.failed > 0 || account.failedMarks)
    return `${lead}: orun reports the job failed, yet exited 0 (the plan's execution.failFast is off).`
  if (account.waiting > 0)
    return (
      `${lead}: orun left it waiting because its dependencies are not completed in orun's own state ` +
      "(orun's concurrent path, execution.concurrency > 1). The action's derived plan sets concurrency 1 and drops dependsOn to avoid this." +
      argsHint
    )
  if (account.cached > 0)
    return `${lead}: orun skipped it as already completed in its own local state (cached), so nothing ran on this runner.`
  if (account.noJobs)
    return `${lead}: orun found no jobs to run in the plan it was given.${argsHint}`
  if (account.started)
    return `${lead}: orun started the job but printed no result for it (no run summary counting it as succeeded).`
  const scope = componentFileAbove(context.cwd)
  const scopeHint = scope
    ? ` A component.yaml at ${scope} can scope orun to that component and filter the job out: this orun did not accept --all, or scoped the run anyway; check 'working-directory' and the orun version.`
    : ''
  return (
    `${lead}: orun printed no account of the job at all, so it was filtered out or skipped before it started ` +
    `(component scoping, an --env/--component filter, or dependencies unmet in orun's state).${argsHint}${scopeHint}`
  )
}

/** The nearest component.yaml at or above dir, if any. */
export function componentFileAbove(dir: string): string | undefined {
  for (let current = dir; ; current = dirname(current)) {
    const file = join(current, 'component.yaml')
    if (existsSync(file)) return file
    if (dirname(current) === current) return undefined
  }
}
