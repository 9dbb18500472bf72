import { checkNameOf, secretNeedsOf, type Plan } from './model.js'

/**
 * The plan job's summary: ids, a job table and the DAG as a mermaid
 * flowchart grouped by environment. GitHub caps a step summary at 1 MiB and
 * its mermaid renderer gives up on very large charts, so big plans get a chart
 * of environments instead of jobs, and the table stops at a byte budget.
 */
export const SUMMARY_BUDGET_BYTES = 900_000
/** Above this many edges a per-job chart is unreadable and may not render. */
export const MAX_CHARTED_EDGES = 400

export interface PlanSummaryInfo {
  plan: Plan
  runId: string
  planFile: string
  artifactName?: string
}

const escapeCell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ')
const mermaidLabel = (text: string) => `"${text.replace(/"/g, '#quot;').replace(/\n/g, ' ')}"`

export function renderPlanSummary({
  plan,
  runId,
  planFile,
  artifactName
}: PlanSummaryInfo): string {
  const jobs = plan.order
  const lines = [
    '## orun plan',
    '',
    '| plan id | run id | jobs |',
    '|---|---|---|',
    `| \`${plan.id}\` | \`${runId}\` | ${jobs.length} |`,
    '',
    artifactName
      ? `Plan file \`${planFile}\`, handed to the run jobs as artifact \`${artifactName}\`.`
      : `Plan file \`${planFile}\`.`,
    ''
  ]
  if (!jobs.length) {
    lines.push('The plan has no jobs: nothing to run.')
    return lines.join('\n') + '\n'
  }
  lines.push('### DAG', '', '```mermaid', ...renderMermaid(plan), '```', '')
  lines.push(...renderSecrets(plan))
  lines.push('### Jobs', '', '| job | check name | runs on | depends on |', '|---|---|---|---|')
  let size = Buffer.byteLength(lines.join('\n'))
  for (const [index, job] of jobs.entries()) {
    const runsOn = typeof job.runsOn === 'string' ? job.runsOn : ''
    const row = `| \`${escapeCell(job.id)}\` | ${escapeCell(checkNameOf(job))} | ${escapeCell(runsOn)} | ${(job.dependsOn ?? []).map(d => `\`${escapeCell(d)}\``).join(', ')} |`
    size += Buffer.byteLength(row) + 1
    if (size > SUMMARY_BUDGET_BYTES) {
      lines.push(
        '',
        `…and ${jobs.length - index} more jobs (the summary is size-limited; the plan file has all of them).`
      )
      break
    }
    lines.push(row)
  }
  return lines.join('\n') + '\n'
}

/** The summary when `orun plan --from-ci` matched no trigger binding and wrote no plan. */
export function renderNothingToPlanSummary(orunLine: string): string {
  return [
    '## orun plan',
    '',
    `orun found nothing to plan: \`${orunLine.replace(/`/g, "'")}\``,
    '',
    'No plan file was written and the jobs output is `[]`: there is nothing to run.',
    ''
  ].join('\n')
}

/**
 * The secrets each job resolves (`secretRefs`). The run action runs orun in local mode, where a
 * ref resolves only from `ORUN_SECRET_<KEY>`; listing them here shows what to map before a job
 * fails on a missing one. Bounded: a plan has few secret refs, and they matter more than rows of
 * the job table, which comes after and is the part cut at the budget.
 */
function renderSecrets(plan: Plan): string[] {
  const rows: string[] = []
  const overrides = new Map<string, boolean>() // ORUN_SECRET_<KEY> -> required by some job
  for (const job of plan.order) {
    for (const need of secretNeedsOf(job)) {
      const from = need.overrideEnv ? `\`${need.overrideEnv}\`` : `not a valid secret ref`
      rows.push(
        `| \`${escapeCell(job.id)}\` | \`${escapeCell(need.asEnv)}\` | ${escapeCell(from)} | \`${escapeCell(need.ref)}\` | ${need.optional ? 'optional' : 'required'} |`
      )
      if (need.overrideEnv) {
        overrides.set(
          need.overrideEnv,
          (overrides.get(need.overrideEnv) ?? false) || !need.optional
        )
      }
    }
  }
  if (!rows.length) return []
  const envLines = [...overrides].map(
    ([name, required]) =>
      `  ${name}: \${{ secrets.${name.slice('ORUN_SECRET_'.length)} }}${required ? '' : ' # optional'}`
  )
  return [
    '### Secrets',
    '',
    'Jobs of this plan read these secrets. orun resolves each from an `ORUN_SECRET_<KEY>` environment variable of the run job; a required one that is missing fails the job.',
    '',
    '| job | as | from | ref | |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    'Map them in the run job (the secret names are examples):',
    '',
    '```yaml',
    'env:',
    ...envLines,
    '```',
    ''
  ]
}

function renderMermaid(plan: Plan): string[] {
  const edgeCount = plan.order.reduce((sum, job) => sum + (job.dependsOn?.length ?? 0), 0)
  return edgeCount > MAX_CHARTED_EDGES ? environmentChart(plan) : jobChart(plan)
}

/** One node per job, one subgraph per environment, an arrow from each dependency to its dependent. */
function jobChart(plan: Plan): string[] {
  const nodeId = new Map(plan.order.map((job, index) => [job.id, `j${index}`]))
  const out = ['flowchart LR']
  for (const [index, [env, jobs]] of [...groupByEnvironment(plan)].entries()) {
    out.push(`  subgraph env${index}[${mermaidLabel(env || 'no environment')}]`)
    for (const job of jobs) out.push(`    ${nodeId.get(job.id)}[${mermaidLabel(job.id)}]`)
    out.push('  end')
  }
  for (const job of plan.order) {
    for (const dep of job.dependsOn ?? [])
      out.push(`  ${nodeId.get(dep)} --> ${nodeId.get(job.id)}`)
  }
  return out
}

/** For large plans: one node per environment (with its job count) and the edges between them. */
function environmentChart(plan: Plan): string[] {
  const groups = groupByEnvironment(plan)
  const envIndex = new Map([...groups.keys()].map((env, index) => [env, `e${index}`]))
  const out = ['flowchart LR']
  for (const [env, jobs] of groups) {
    out.push(
      `  ${envIndex.get(env)}[${mermaidLabel(`${env || 'no environment'}: ${jobs.length} jobs`)}]`
    )
  }
  const edges = new Set<string>()
  for (const job of plan.order) {
    for (const dep of job.dependsOn ?? []) {
      const from = plan.byId.get(dep)!.environment ?? ''
      const to = job.environment ?? ''
      if (from !== to) edges.add(`  ${envIndex.get(from)} --> ${envIndex.get(to)}`)
    }
  }
  return [...out, ...edges, `  %% ${plan.order.length} jobs: too many to chart one by one`]
}

function groupByEnvironment(plan: Plan): Map<string, typeof plan.order> {
  const groups = new Map<string, typeof plan.order>()
  for (const job of plan.order) {
    const env = job.environment ?? ''
    groups.set(env, [...(groups.get(env) ?? []), job])
  }
  return groups
}
