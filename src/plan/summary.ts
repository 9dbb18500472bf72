import { markdownCode, markdownLiteral, mermaidLabel } from '../common/escape.js'
import type { Plan } from './model.js'

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
    `| ${markdownCode(plan.id, true)} | ${markdownCode(runId, true)} | ${jobs.length} |`,
    '',
    artifactName
      ? `Plan file ${markdownCode(planFile)}, handed to the run jobs as artifact ${markdownCode(artifactName)}.`
      : `Plan file ${markdownCode(planFile)}.`,
    ''
  ]
  if (!jobs.length) {
    lines.push('The plan has no jobs: nothing to run.')
    return lines.join('\n') + '\n'
  }
  lines.push('### DAG', '', '```mermaid', ...renderMermaid(plan), '```', '')
  lines.push('### Jobs', '', '| job | env | component | depends on |', '|---|---|---|---|')
  let size = Buffer.byteLength(lines.join('\n'))
  for (const [index, job] of jobs.entries()) {
    const row = `| ${markdownCode(job.id, true)} | ${markdownLiteral(job.environment ?? '', true)} | ${markdownLiteral(job.component ?? '', true)} | ${(job.dependsOn ?? []).map(d => markdownCode(d, true)).join(', ')} |`
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
