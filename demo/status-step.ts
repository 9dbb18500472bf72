/**
 * The demo's last step: the bundled status action (dist/status), run as the
 * workflow's final job would run it once the matrix has finished, against the
 * same local coordination server and a local stand-in of GitHub's REST API
 * (so rows link to "GitHub" jobs). Its job summary is printed as plain text.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import {
  DEFAULT_GITHUB_TOKEN,
  startGitHubApiServer,
  type StandinJob
} from '../testing/github-api-server.js'
import type { Harness, ProcessResult } from './harness.js'

const REPOSITORY = 'acme/monorepo'

export async function statusStep(
  harness: Harness,
  inputs: { 'run-id': string; 'plan-id': string; 'plan-file': string },
  /** Return the step's result without printing it (tests). */
  quiet = false
): Promise<ProcessResult> {
  const api = await startGitHubApiServer()
  try {
    // One GitHub job per runner the demo started, named as the workflow would name it.
    const jobs: StandinJob[] = [...harness.runnerLabels].map(([runnerName, label]) => ({
      name: `run ${label}`,
      runnerName
    }))
    const env = harness.baseEnv(join(harness.dir, 'workspaces', 'status'), 'status')
    mkdirSync(env.GITHUB_WORKSPACE!, { recursive: true })
    api.setJobs(REPOSITORY, env.GITHUB_RUN_ID!, Number(env.GITHUB_RUN_ATTEMPT), jobs)
    const step = harness.spawnStep(
      'dist/status/index.js',
      { ...env, GITHUB_API_URL: api.url, GITHUB_REPOSITORY: REPOSITORY },
      {
        ...inputs,
        'backend-url': harness.server.url,
        'github-token': DEFAULT_GITHUB_TOKEN,
        'fail-on': 'any'
      },
      join(harness.dir, 'runners', 'status', 'files'),
      'status'
    )
    const result = await step.done
    if (quiet) return result
    const failure = /^::error::(.*)$/m.exec(result.stdout)?.[1]
    console.log(
      `\nstatus step: exit ${result.exitCode}, status=${result.outputs.status ?? '-'}${failure ? `, ${failure}` : ''}`
    )
    console.log(`summary (${Buffer.byteLength(result.summary)} bytes), as text:\n`)
    console.log(summaryAsText(result.summary))
    return result
  } finally {
    await api.close()
  }
}

const entities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"' }
const decode = (text: string) =>
  text
    .replace(/&#(\d+);/g, (_, code) => String.fromCharCode(Number(code)))
    .replace(/&(amp|lt|gt|quot);/g, (_, name) => entities[name])
    .replace(/#(\d+);/g, (_, code) => String.fromCharCode(Number(code)))

/** A terminal rendering of the summary's markdown: tables aligned, mermaid charts drawn as text. */
export function summaryAsText(markdown: string): string {
  const out: string[] = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    const fence = /^(`{3,})(\w*)$/.exec(line)
    if (fence) {
      const end = lines.findIndex((l, j) => j > i && l === fence[1])
      const body = lines.slice(i + 1, end)
      if (fence[2] === 'mermaid' && body[0] === 'gantt') out.push(...ganttText(body))
      else if (fence[2] === 'mermaid') out.push(...flowchartText(body))
      else out.push(...body.map(l => `    │ ${l}`))
      i = end
    } else if (line.startsWith('|')) {
      const end = lines.findIndex((l, j) => j > i && !l.startsWith('|'))
      out.push(...tableText(lines.slice(i, end < 0 ? lines.length : end)))
      i = (end < 0 ? lines.length : end) - 1
    } else if (line.startsWith('#')) {
      out.push(decode(line.replace(/^#+ /, '')).toUpperCase())
    } else if (line.startsWith('<details>')) {
      out.push(`▸ ${decode(line.replace(/<\/?(details|summary)>/g, ''))}`)
    } else if (line !== '</details>') {
      out.push(decode(line.replace(/^> ?/, 'note: ').replace(/^note: $/, '')))
    }
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n')
}

function tableText(rows: string[]): string[] {
  const cells = rows
    .filter(row => !/^\|[-:|]+\|$/.test(row))
    .map(row =>
      row
        .slice(1, -1)
        .split(' | ')
        .map(cell =>
          decode(
            cell
              .trim()
              .replace(/<br><sub>(.*)<\/sub>/, ' ($1)')
              .replace(/\[log\]\((.*)\)/, '$1')
          )
        )
    )
  const widths = cells[0].map((_, c) => Math.max(...cells.map(row => (row[c] ?? '').length)))
  return cells.map(
    row =>
      '  ' +
      row
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd()
  )
}

function flowchartText(body: string[]): string[] {
  const out: string[] = []
  const names = new Map<string, string>()
  for (const line of body) {
    const subgraph = /^\s*subgraph \w+\["(.*)"\]$/.exec(line)
    const node = /^\s*(\w+)\["(.*)"\](?::::(\w+))?$/.exec(line)
    const edge = /^\s*(\w+) --> (\w+)$/.exec(line)
    if (subgraph) out.push(`  [${decode(subgraph[1])}]`)
    else if (node) {
      const [title, detail] = decode(node[2]).split('<br/>')
      names.set(node[1], title)
      out.push(`    ${title.padEnd(28)} ${detail ?? ''}`)
    } else if (edge) out.push(`    ${names.get(edge[1])} → ${names.get(edge[2])}`)
  }
  return out
}

function ganttText(body: string[]): string[] {
  const bars = body.flatMap(line => {
    const task = /^ {2}(.+?) :(?:(\w+), )?(\d+), (\d+)$/.exec(line)
    return task ? [{ name: task[1], tag: task[2] ?? '', start: +task[3], end: +task[4] }] : []
  })
  if (!bars.length) return []
  const t0 = Math.min(...bars.map(b => b.start))
  const span = Math.max(1, Math.max(...bars.map(b => b.end)) - t0)
  const width = 50
  const mark: Record<string, string> = { crit: '✗', active: '█', done: '▒' }
  return [
    `  ${''.padEnd(30)} 0s${' '.repeat(width - 6)}${(span / 1000).toFixed(1)}s`,
    ...bars.map(bar => {
      const from = Math.round(((bar.start - t0) / span) * width)
      const to = Math.max(from + 1, Math.round(((bar.end - t0) / span) * width))
      const row = ' '.repeat(from) + (mark[bar.tag] ?? '░').repeat(to - from)
      return `  ${bar.name.padEnd(30)} ${row.padEnd(width)}|`
    }),
    `  ${''.padEnd(30)} █ critical path  ✗ failed  ▒ other`
  ]
}
