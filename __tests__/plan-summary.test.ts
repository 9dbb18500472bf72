import { describe, expect, test } from '@jest/globals'
import { readFileSync } from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parsePlan, type Plan, type PlanJob } from '../src/plan/model.js'
import { MAX_CHARTED_EDGES, SUMMARY_BUDGET_BYTES, renderPlanSummary } from '../src/plan/summary.js'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const FIXTURES = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'plans')

const loadFixture = (name: string) =>
  parsePlan(readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8'), `${name}.json`)

const planOf = (jobs: PlanJob[]) =>
  parsePlan(
    JSON.stringify({ metadata: { checksum: 'sha256-5151515151515151' }, jobs }),
    'synthetic.json'
  )

const render = (plan: Plan, artifactName?: string) =>
  renderPlanSummary({ plan, runId: 'gha-99-2-abc', planFile: '/tmp/plan.json', artifactName })

/** The lines between ```mermaid and the closing fence. */
function mermaidBlock(summary: string): string[] {
  const match = /```mermaid\n([\s\S]*?)\n```/.exec(summary)
  expect(match).not.toBeNull()
  return match![1].split('\n')
}

interface JobChart {
  /** job id -> the environment label of the subgraph holding its node */
  subgraphOf: Map<string, string>
  subgraphs: string[]
  /** [dependency id, dependent id] */
  edges: [string, string][]
}

/** Reads the per-job flowchart back into job ids, their subgraphs and the edges between them. */
function readJobChart(lines: string[]): JobChart {
  const unquote = (label: string) => label.replace(/#quot;/g, '"')
  const jobOfNode = new Map<string, string>()
  const subgraphOf = new Map<string, string>()
  const subgraphs: string[] = []
  const edgeNodes: [string, string][] = []
  let current: string | undefined
  for (const line of lines.slice(1)) {
    let m: RegExpExecArray | null
    if ((m = /^ {2}subgraph \w+\["(.*)"\]$/.exec(line))) {
      current = unquote(m[1])
      subgraphs.push(current)
    } else if (line === '  end') {
      current = undefined
    } else if ((m = /^ {4}(\w+)\["(.*)"\]$/.exec(line))) {
      expect(current).toBeDefined()
      jobOfNode.set(m[1], unquote(m[2]))
      subgraphOf.set(unquote(m[2]), current!)
    } else if ((m = /^ {2}(\w+) --> (\w+)$/.exec(line))) {
      edgeNodes.push([m[1], m[2]])
    } else {
      throw new Error(`unexpected mermaid line: ${line}`)
    }
  }
  const edges = edgeNodes.map(
    ([from, to]) => [jobOfNode.get(from)!, jobOfNode.get(to)!] as [string, string]
  )
  return { subgraphOf, subgraphs, edges }
}

const planEdges = (plan: Plan) =>
  plan.order.flatMap(job => (job.dependsOn ?? []).map(dep => [dep, job.id] as [string, string]))

/** Splits a markdown table row on the pipes that are not escaped. */
const tableCells = (row: string) => row.split(/(?<!\\)\|/).slice(1, -1)

describe('renderPlanSummary', () => {
  test('names the plan id, run id and job count', () => {
    const plan = loadFixture('remote-state-matrix')
    const summary = render(plan)
    expect(summary).toContain('| `905f6efbdd89` | `gha-99-2-abc` | 6 |')
    expect(summary).toContain('Plan file `/tmp/plan.json`.')
    expect(summary).not.toContain('artifact')
  })

  test('mentions the artifact when the plan was uploaded', () => {
    const summary = render(loadFixture('single'), 'orun-plan-gha-99-2-abc')
    expect(summary).toContain('artifact `orun-plan-gha-99-2-abc`')
  })

  test('remote-state-matrix: a flowchart with one subgraph per environment and one edge per dependency', () => {
    const plan = loadFixture('remote-state-matrix')
    const lines = mermaidBlock(render(plan))
    expect(lines[0]).toMatch(/^flowchart /)
    const chart = readJobChart(lines)
    expect(chart.subgraphs).toEqual(['dev', 'stage'])
    for (const job of plan.order) expect(chart.subgraphOf.get(job.id)).toBe(job.environment)
    expect(chart.edges).toHaveLength(4)
    expect(new Set(chart.edges.map(e => e.join(' -> ')))).toEqual(
      new Set(planEdges(plan).map(e => e.join(' -> ')))
    )
  })

  test('wide-deep: cross-environment edges are charted too', () => {
    const plan = loadFixture('wide-deep')
    const chart = readJobChart(mermaidBlock(render(plan)))
    expect(chart.subgraphs).toEqual(['dev', 'qa', 'stage', 'prod'])
    expect(chart.subgraphOf.size).toBe(40)
    expect(chart.edges.length).toBe(planEdges(plan).length)
    expect(chart.edges).toContainEqual(['api@dev.smoke', 'api@qa.smoke'])
  })

  test('a job table row per job, in topological order', () => {
    const plan = loadFixture('failing-upstream')
    const summary = render(plan)
    const rows = summary.split('\n').filter(line => /^\| `[^`]+@dev\.smoke` \|/.test(line))
    expect(rows).toEqual([
      '| `foundation@dev.smoke` | foundation · dev · smoke |  |  |',
      '| `api@dev.smoke` | api · dev · smoke |  | `foundation@dev.smoke` |',
      '| `web@dev.smoke` | web · dev · smoke |  | `api@dev.smoke` |'
    ])
  })

  test("orun 2.54 plan: the table shows orun's checkName and runsOn", () => {
    const summary = render(loadFixture('orun254-matrix'))
    expect(summary).toContain('| job | check name | runs on | depends on |')
    expect(summary).toContain(
      '| `foundation.stage.plan-apply` | foundation · stage · Plan apply | ubuntu-latest |  |'
    )
    expect(summary).toContain(
      '| `api-edge.stage.deploy` | api-edge · stage · Deploy | ubuntu-latest | `foundation.stage.plan-apply` |'
    )
    expect(summary).not.toContain('### Secrets')
  })

  test('secrets: one row per ref, the ORUN_SECRET_ variable, and env lines once per variable', () => {
    const plan = planOf([
      {
        id: 'a.dev.x',
        secretRefs: [
          { asEnv: 'DB', ref: 'secret://env:dev/DB_URL' },
          { asEnv: 'OPT', ref: 'secret://OPT_KEY', optional: true },
          { asEnv: 'BAD', ref: 'plain-text' }
        ]
      },
      // The same key, required here: the env line is then not marked optional.
      { id: 'b.dev.x', secretRefs: [{ asEnv: 'OPT', ref: 'secret://OPT_KEY@2' }] }
    ])
    const summary = render(plan)
    const rows = summary.split('\n').filter(line => /^\| `[ab]\.dev\.x` \| `/.test(line))
    expect(rows).toEqual([
      '| `a.dev.x` | `DB` | `ORUN_SECRET_DB_URL` | `secret://env:dev/DB_URL` | required |',
      '| `a.dev.x` | `OPT` | `ORUN_SECRET_OPT_KEY` | `secret://OPT_KEY` | optional |',
      '| `a.dev.x` | `BAD` | not a valid secret ref | `plain-text` | required |',
      '| `b.dev.x` | `OPT` | `ORUN_SECRET_OPT_KEY` | `secret://OPT_KEY@2` | required |'
    ])
    expect(summary).toContain(
      [
        'env:',
        '  ORUN_SECRET_DB_URL: ${{ secrets.DB_URL }}',
        '  ORUN_SECRET_OPT_KEY: ${{ secrets.OPT_KEY }}',
        '```'
      ].join('\n')
    )
  })

  test('an empty plan says there is nothing to run, with no chart or table', () => {
    const summary = render(loadFixture('empty'))
    expect(summary).toContain('| `c4427eabb0d6` | `gha-99-2-abc` | 0 |')
    expect(summary).toMatch(/nothing to run/)
    expect(summary).not.toContain('mermaid')
    expect(summary).not.toContain('### Jobs')
  })

  test('table cells escape | and flatten newlines, so a row keeps its four cells', () => {
    const plan = planOf([
      {
        id: 'up|stream@dev.smoke',
        environment: 'de|v',
        component: 'c|1',
        name: 's|1',
        runsOn: 'x|y'
      },
      {
        id: 'down@dev.smoke',
        environment: 'dev\nsplit',
        component: 'plain',
        name: 's2',
        dependsOn: ['up|stream@dev.smoke']
      }
    ])
    const summary = render(plan)
    const rows = summary.split('\n').filter(line => /^\| `(up|down)/.test(line))
    expect(rows).toEqual([
      '| `up\\|stream@dev.smoke` | c\\|1 · de\\|v · s\\|1 | x\\|y |  |',
      '| `down@dev.smoke` | plain · dev split · s2 |  | `up\\|stream@dev.smoke` |'
    ])
    for (const row of rows) expect(tableCells(row)).toHaveLength(4)
    // The chart has its own quoting; a newline must not end a mermaid line early.
    const chart = readJobChart(mermaidBlock(summary))
    expect(chart.subgraphs).toEqual(['de|v', 'dev split'])
    expect(chart.edges).toEqual([['up|stream@dev.smoke', 'down@dev.smoke']])
  })

  test('quotes in ids do not break mermaid labels', () => {
    const plan = planOf([
      { id: 'say "hi"@dev.smoke', environment: 'dev' },
      { id: 'after@dev.smoke', environment: 'dev', dependsOn: ['say "hi"@dev.smoke'] }
    ])
    const lines = mermaidBlock(render(plan))
    expect(lines.join('\n')).not.toContain('"hi"')
    const chart = readJobChart(lines)
    expect(chart.edges).toEqual([['say "hi"@dev.smoke', 'after@dev.smoke']])
  })

  test('600 jobs and ~2000 edges: under the budget, with a chart of environments instead', () => {
    const environments = ['dev', 'qa', 'stage', 'prod']
    const jobs: PlanJob[] = []
    for (const [e, env] of environments.entries()) {
      for (let k = 0; k < 150; k++) {
        // Up to three earlier jobs of this environment, and the same component one stage back.
        const dependsOn = [1, 2, 3].filter(d => k - d >= 0).map(d => `svc${k - d}@${env}.smoke`)
        if (e > 0 && k % 3 === 0) dependsOn.push(`svc${k}@${environments[e - 1]}.smoke`)
        jobs.push({ id: `svc${k}@${env}.smoke`, environment: env, component: `svc${k}`, dependsOn })
      }
    }
    const plan = planOf(jobs)
    const edgeCount = planEdges(plan).length
    expect(plan.order).toHaveLength(600)
    expect(edgeCount).toBeGreaterThan(1900)
    expect(edgeCount).toBeGreaterThan(MAX_CHARTED_EDGES)

    const summary = render(plan)
    expect(Buffer.byteLength(summary)).toBeLessThan(SUMMARY_BUDGET_BYTES)
    const lines = mermaidBlock(summary)
    expect(lines[0]).toMatch(/^flowchart /)
    expect(lines.join('\n')).not.toContain('subgraph')
    expect(lines.join('\n')).not.toContain('svc0@')
    expect(lines.filter(line => /^ {2}e\d+\[/.test(line))).toEqual([
      '  e0["dev: 150 jobs"]',
      '  e1["qa: 150 jobs"]',
      '  e2["stage: 150 jobs"]',
      '  e3["prod: 150 jobs"]'
    ])
    // Only the environment-to-environment edges, each once.
    expect(lines.filter(line => line.includes('-->'))).toEqual([
      '  e0 --> e1',
      '  e1 --> e2',
      '  e2 --> e3'
    ])
    expect(lines.join('\n')).toMatch(/600 jobs/)
    // The table still lists every job: 600 rows fit in the budget.
    expect(summary.split('\n').filter(line => /^\| `svc\d+@/.test(line))).toHaveLength(600)
  })

  test('a table too large for the step summary stops at the budget and says how many are left', () => {
    // Long "depends on" cells: each job waits for up to 40 earlier ones.
    const jobs: PlanJob[] = Array.from({ length: 600 }, (_, k) => ({
      id: `job${k}-component-with-a-rather-long-name@production-eu-west.smoke`,
      environment: 'production-eu-west',
      component: `job${k}-component-with-a-rather-long-name`,
      dependsOn: Array.from({ length: Math.min(k, 40) }, (_, d) => d).map(
        d => `job${d}-component-with-a-rather-long-name@production-eu-west.smoke`
      )
    }))
    const plan = planOf(jobs)
    const summary = render(plan)
    const rows = summary.split('\n').filter(line => /^\| `job\d+-/.test(line))
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.length).toBeLessThan(600)
    expect(summary).toContain(`…and ${600 - rows.length} more jobs`)
    // GitHub refuses a step summary over 1 MiB.
    expect(Buffer.byteLength(summary)).toBeLessThan(1024 * 1024)
  })
})
