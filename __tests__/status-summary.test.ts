/**
 * The status action's pure parts: what each job's outcome is (blocked by whom,
 * never run, carried over), how long it waited, the critical path, the
 * summary's pictures and table, escaping of hostile plan text, the size
 * budget, the link rule to GitHub jobs, and the fail-on syntax.
 */
import { describe, expect, it } from '@jest/globals'
import type { JobRecord, RunRecord } from '../src/backend/types.js'
import { carriedNote, readCarriedNote } from '../src/common/carried-note.js'
import { parsePlan, type PlanFile } from '../src/plan/model.js'
import { MAX_CHARTED_JOBS, dagChart, timelineChart } from '../src/status/charts.js'
import { parseFailOn } from '../src/status/inputs.js'
import { linkJobs, nameMatches, type GitHubJob } from '../src/status/links.js'
import { tailOf } from '../src/status/logs.js'
import { classifyRun, criticalPath } from '../src/status/outcome.js'
import { candidateRunIds } from '../src/status/run-read.js'
import { renderStatusSummary, type StatusReport } from '../src/status/summary.js'
import { sharedPlanText } from '../testing/fixtures.js'

const T0 = Date.parse('2026-11-26T10:00:00Z')
const iso = (offsetSeconds: number) => new Date(T0 + offsetSeconds * 1000).toISOString()

function runRecord(overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    runId: 'gha-1-1-abc',
    status: 'failed',
    planChecksum: 'x',
    createdAt: iso(0),
    updatedAt: iso(100),
    jobTotal: 0,
    jobDone: 0,
    jobFailed: 0,
    ...overrides
  }
}

function record(
  jobId: string,
  status: JobRecord['status'],
  start?: number,
  end?: number,
  extra: Partial<JobRecord> = {}
): JobRecord {
  return {
    jobId,
    component: jobId.split('@')[0],
    status,
    deps: [],
    runnerId: start === undefined ? null : `runner-${jobId}-1-42-abcdef`,
    startedAt: start === undefined ? null : iso(start),
    finishedAt: end === undefined ? null : iso(end),
    lastError: null,
    heartbeatAt: null,
    ...extra
  }
}

/** The markdown with every fenced code block (``` or longer, closed by a fence at least as long) removed. */
function withoutFencedBlocks(markdown: string): string {
  const out: string[] = []
  let fence = ''
  for (const line of markdown.split('\n')) {
    const opener = /^(`{3,})/.exec(line)?.[1]
    if (!fence && opener) fence = opener
    else if (fence && opener && opener.length >= fence.length && line.trim() === opener) fence = ''
    else if (!fence) out.push(line)
  }
  return out.join('\n')
}

function report(view: ReturnType<typeof classifyRun>, extra: Partial<StatusReport> = {}) {
  return renderStatusSummary({
    view,
    planId: 'abc123abc123',
    links: new Map(),
    tails: { tails: new Map(), notFetched: 0 },
    notes: [],
    attempt: 1,
    now: T0 + 1_000_000,
    ...extra
  })
}

describe('classifying the run', () => {
  const plan = parsePlan(sharedPlanText('failing-upstream'), 'plan.json')

  it('names the failed upstream job of every blocked job, directly or through another blocked one', () => {
    const view = classifyRun(plan, 'run-1', runRecord(), [
      record('foundation@dev.smoke', 'failed', 2, 7, { lastError: 'orun exited with code 3' }),
      record('api@dev.smoke', 'pending'),
      record('web@dev.smoke', 'pending')
    ])
    expect(view.jobs.map(j => [j.id, j.outcome, j.blockedBy])).toEqual([
      ['foundation@dev.smoke', 'failed', []],
      ['api@dev.smoke', 'blocked', ['foundation@dev.smoke']],
      ['web@dev.smoke', 'blocked', ['foundation@dev.smoke']]
    ])
    expect(view.verdict).toBe('failed')
    expect(view.counts).toEqual({
      failed: 1,
      blocked: 2,
      'not-run': 0,
      running: 0,
      carried: 0,
      success: 0,
      skipped: 0
    })
  })

  it('calls pending jobs with nothing failed upstream never run, and the run incomplete', () => {
    const view = classifyRun(plan, 'run-1', runRecord({ status: 'running' }), [
      record('foundation@dev.smoke', 'success', 1, 3),
      record('api@dev.smoke', 'pending'),
      record('web@dev.smoke', 'pending')
    ])
    expect(view.jobs.map(j => j.outcome)).toEqual(['success', 'not-run', 'not-run'])
    expect(view.verdict).toBe('incomplete')
  })

  it('treats a missing run as every job never run', () => {
    const view = classifyRun(plan, 'run-1', undefined, [])
    expect(view.jobs.map(j => j.outcome)).toEqual(['not-run', 'not-run', 'not-run'])
    expect(view.verdict).toBe('incomplete')
  })

  it('recognises a success carried over from an earlier attempt by its note', () => {
    const view = classifyRun(plan, 'run-2', runRecord({ status: 'completed' }), [
      record('foundation@dev.smoke', 'success', 1, 1, {
        lastError: 'carried over from attempt 1 (runner GitHub Actions 3-1-77-aa)'
      }),
      record('api@dev.smoke', 'success', 2, 12),
      record('web@dev.smoke', 'success', 13, 20)
    ])
    expect(view.jobs.map(j => [j.outcome, j.carriedFrom])).toEqual([
      ['carried', 1],
      ['success', undefined],
      ['success', undefined]
    ])
    expect(view.verdict).toBe('success')
    const summary = report(view)
    expect(summary).toContain(':::carried')
    expect(summary).toMatch(/carried over from attempt 1/)
  })

  it('a success carried from a record that names no runner reads carried, from an earlier attempt', () => {
    const view = classifyRun(plan, 'run-2', runRecord({ status: 'completed' }), [
      record('foundation@dev.smoke', 'success', 1, 1, { lastError: carriedNote() }),
      record('api@dev.smoke', 'success', 2, 12, {
        lastError: carriedNote({ attempt: 2, runner: 'r (x)' })
      }),
      // Only the whole note counts: an error text that merely mentions it is no carry.
      record('web@dev.smoke', 'success', 13, 20, { lastError: `see ${carriedNote()}` })
    ])
    expect(view.jobs.map(j => [j.outcome, j.carriedFrom])).toEqual([
      ['carried', undefined],
      ['carried', 2],
      ['success', undefined]
    ])
    expect(readCarriedNote(carriedNote({ attempt: 2, runner: 'r (x)' }))).toEqual({
      attempt: 2,
      runner: 'r (x)'
    })
    expect(report(view)).toContain('carried over from an earlier attempt')
  })

  it('measures waits from the latest dependency finish, roots from the run creation', () => {
    const wide = parsePlan(sharedPlanText('wide-deep'), 'plan.json')
    const records = wide.order.map(j => record(j.id, 'pending'))
    const at = (id: string, start: number, end: number) =>
      Object.assign(
        records.find(r => r.jobId === id)!,
        {
          status: 'success',
          startedAt: iso(start),
          finishedAt: iso(end),
          runnerId: 'r'
        }
      )
    at('net@dev.smoke', 4, 10)
    at('iam@dev.smoke', 1, 25)
    at('db@dev.smoke', 31, 40)
    const view = classifyRun(wide, 'run-1', runRecord(), records)
    expect(view.byId.get('net@dev.smoke')!.waitedMs).toBe(4000)
    expect(view.byId.get('iam@dev.smoke')!.waitedMs).toBe(1000)
    // db depends on net (done at 10 s) and iam (done at 25 s): it waited 6 s after the later one.
    expect(view.byId.get('db@dev.smoke')!.waitedMs).toBe(6000)
    expect(view.byId.get('db@dev.smoke')!.durationMs).toBe(9000)
    expect(criticalPath(view).map(j => j.id)).toEqual(['iam@dev.smoke', 'db@dev.smoke'])
  })
})

describe('the summary', () => {
  const plan = parsePlan(sharedPlanText('failing-upstream'), 'plan.json')
  const view = classifyRun(plan, 'run-1', runRecord(), [
    record('foundation@dev.smoke', 'failed', 2, 7, { lastError: 'orun exited with code 3' }),
    record('api@dev.smoke', 'pending'),
    record('web@dev.smoke', 'pending')
  ])

  it('puts the verdict and totals first, then the DAG by outcome, the timeline, the failure and the table', () => {
    const summary = report(view, {
      tails: {
        tails: new Map([['foundation@dev.smoke', { text: 'step 1\nboom: exit 3' }]]),
        notFetched: 0
      }
    })
    const order = [
      '## ❌ orun run failed',
      '| ✓ succeeded | ✗ failed | ⊘ blocked |',
      '| 0 | 1 | 2 |',
      '1 failed (foundation@dev.smoke); 2 blocked (api@dev.smoke, web@dev.smoke)',
      '```mermaid\nflowchart LR',
      '```mermaid\ngantt',
      '<details><summary>✗ foundation@dev.smoke</summary>',
      '| check | status | duration | waited | runner | attempt | log |'
    ].map(text => summary.indexOf(text))
    expect(order.map((index, i) => (index < 0 ? i : -1)).filter(i => i >= 0)).toEqual([])
    expect([...order].sort((a, b) => a - b)).toEqual(order)
    expect(summary).toContain('"foundation@dev.smoke<br/>✗ failed in 5.0s"]:::failed')
    expect(summary).toContain('"api@dev.smoke<br/>⊘ blocked by foundation@dev.smoke"]:::blocked')
    expect(summary).toContain('  j0 --> j1\n  j1 --> j2')
    expect(summary).toContain(':crit, ' + String(T0 + 2000) + ', ' + String(T0 + 7000))
    expect(summary).toContain('```text\norun exited with code 3\n```')
    expect(summary).toContain('```text\nstep 1\nboom: exit 3\n```')
    expect(summary).toContain(
      '| foundation@dev.smoke | ✗ failed | 5.0s | 2.0s | runner&#45;foundation@dev.smoke&#45;1&#45;42&#45;abcdef | 1 | – |'.replace(
        /&#45;/g,
        '-'
      )
    )
    expect(summary).toContain(
      '| api@dev.smoke | ⊘ blocked by foundation@dev.smoke | – | – | – | – | – |'
    )
  })

  it('shows hostile plan and backend text literally, breaking no table, fence, label or tag', () => {
    const evil = 'x|y`z</details><script>alert(1)</script>[a](https://e.vil)"]\n::error::pwned'
    const file: PlanFile = {
      metadata: { checksum: 'sha256-' + 'ab'.repeat(32) },
      jobs: [
        { id: 'root', environment: 'dev', checkName: evil },
        { id: 'leaf', environment: 'dev', dependsOn: ['root'] }
      ]
    }
    const hostile = parsePlan(JSON.stringify(file), 'plan.json')
    const hv = classifyRun(hostile, 'run-1', runRecord(), [
      record('root', 'failed', 1, 2, {
        lastError: 'bad\n```\n</details>\n# heading',
        runnerId: evil
      }),
      record('leaf', 'pending')
    ])
    const summary = report(hv, {
      tails: { tails: new Map([['root', { text: '````\n<img src=x>' }]]), notFetched: 0 }
    })
    expect(summary).not.toContain('<script>')
    expect(summary).not.toContain('](https://e.vil)')
    expect(summary).not.toMatch(/^::error::/m)
    // Outside code blocks (where GitHub shows text literally), exactly one details block.
    const outside = withoutFencedBlocks(summary)
    expect(outside.match(/<details>/g)).toHaveLength(1)
    expect(outside.match(/<\/details>/g)).toHaveLength(1)
    expect(outside).not.toMatch(/<(script|img)/)
    // The error's own ``` fence cannot close the block: the fence around it is longer.
    expect(summary).toContain('````text\nbad\n```\n</details>\n# heading\n````')
    expect(summary).toContain('`````text\n````\n<img src=x>\n`````')
    // Each table row still has its 7 cells (8 separators, none escaped away).
    const rows = summary
      .split('\n')
      .filter(l => l.startsWith('| ') && l.includes('<sub>root</sub>'))
    expect(rows).toHaveLength(1)
    expect(rows[0].split('|')).toHaveLength(9)
    // Mermaid labels: no raw quote, bracket or tag inside.
    const node = summary.split('\n').find(l => l.trimStart().startsWith('j0['))!
    expect(node).toMatch(/^ {4}j0\["[^"[\]<>`]*(<br\/>[^"[\]<>`]*)*"\]:::failed$/)
    // Gantt task names lose mermaid syntax characters.
    const bar = summary.split('\n').find(l => l.startsWith('  ✗ '))!
    expect(bar.split(':')).toHaveLength(2)
  })

  it('removes invisible and bidirectional characters from labels, charts and tables', () => {
    const hidden = '\u202e\u200b\u2066\u200f\ufeff'
    const file: PlanFile = {
      metadata: { checksum: 'sha256-' + 'ef'.repeat(32) },
      jobs: [
        { id: `ro${hidden}ot`, environment: `de${hidden}v`, checkName: `Dep${hidden}loy` },
        { id: 'leaf', environment: 'dev', dependsOn: [`ro${hidden}ot`] }
      ]
    }
    const shady = parsePlan(JSON.stringify(file), 'plan.json')
    const sv = classifyRun(shady, 'run-1', runRecord(), [
      record(`ro${hidden}ot`, 'failed', 1, 2, { runnerId: `run${hidden}ner` }),
      record('leaf', 'pending')
    ])
    const summary = report(sv)
    expect(summary).toContain('Deploy')
    expect(summary).toContain('runner')
    expect(summary).not.toMatch(/[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/)
  })

  it('draws large plans per environment and stays under 1 MiB with 3,000 jobs', () => {
    const jobs = Array.from({ length: 3000 }, (_, i) => ({
      id: `services-platform-edge-gateway-component-with-a-long-name-${i}.env-${i % 5}.deploy`,
      environment: `env-${i % 5}`,
      component: `services-platform-edge-gateway-component-with-a-long-name-${i}`,
      checkName: `services-platform-edge-gateway-component-with-a-long-name-${i} · env-${i % 5} · Deploy`,
      dependsOn:
        i >= 5
          ? [
              `services-platform-edge-gateway-component-with-a-long-name-${i - 5}.env-${i % 5}.deploy`
            ]
          : []
    }))
    const big = parsePlan(
      JSON.stringify({ metadata: { checksum: 'sha256-' + 'cd'.repeat(32) }, jobs }),
      'plan.json'
    )
    const records = big.order.map((j, i) =>
      i % 7 === 0
        ? record(j.id, 'failed', i, i + 3, { lastError: 'E'.repeat(5000) })
        : record(j.id, i % 7 === 1 ? 'pending' : 'success', i, i + 2)
    )
    const bv = classifyRun(big, 'run-big', runRecord(), records)
    const summary = report(bv)
    expect(Buffer.byteLength(summary)).toBeLessThan(1024 * 1024)
    expect(dagChart(bv).filter(l => /^ {2}e\d\[/.test(l))).toHaveLength(5)
    expect(summary).not.toMatch(/^ {4}j\d+\[/m)
    expect(summary).toMatch(/…and \d+ more failed jobs/)
    expect(summary).toMatch(/…and \d+ more jobs \(the summary is size-limited/)
    expect(timelineChart(bv, [], T0).filter(l => l.startsWith('  ▣ '))).toHaveLength(5)
    expect(bv.jobs.length).toBeGreaterThan(MAX_CHARTED_JOBS)
  })

  it('stays under 1 MiB with very long check names: smaller pictures, with a note', () => {
    // 150 jobs (drawn one by one by count) with 8 KB check names: per job, the charts alone are MBs.
    const long = (i: number) => `${'very-long-check-name-'.repeat(400)}${i}`
    const jobs = Array.from({ length: 150 }, (_, i) => ({
      id: `c${i}.env-${i % 3}.deploy`,
      environment: `env-${i % 3}`,
      checkName: long(i),
      dependsOn: i >= 3 ? [`c${i - 3}.env-${i % 3}.deploy`] : []
    }))
    const plan = parsePlan(
      JSON.stringify({ metadata: { checksum: 'sha256-' + '9e'.repeat(32) }, jobs }),
      'plan.json'
    )
    const lv = classifyRun(
      plan,
      'run-long',
      runRecord(),
      plan.order.map((j, i) => record(j.id, i % 10 === 0 ? 'failed' : 'success', i, i + 2))
    )
    // The premise: the pictures per job are far over the limit on their own.
    expect(Buffer.byteLength(dagChart(lv).join('\n'))).toBeGreaterThan(1024 * 1024)
    const summary = report(lv)
    expect(Buffer.byteLength(summary)).toBeLessThanOrEqual(1024 * 1024)
    expect(summary).toContain('drawn per environment')
    expect(summary).toMatch(/```mermaid\nflowchart LR\n {2}e0\[/)
  })

  it('cuts a log to its last lines', () => {
    const log = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n') + '\n\n'
    const tail = tailOf(log).split('\n')
    expect(tail).toHaveLength(40)
    expect(tail[0]).toBe('line 60')
    expect(tail.at(-1)).toBe('line 99')
  })
})

describe('linking orun jobs to GitHub jobs', () => {
  const file: PlanFile = {
    metadata: { checksum: 'sha256-' + 'ef'.repeat(32) },
    jobs: [
      { id: 'api.dev.deploy', environment: 'dev', checkName: 'api · dev · Deploy' },
      { id: 'web.dev.deploy', environment: 'dev' },
      { id: 'db.dev.migrate', environment: 'dev' },
      { id: 'cache.dev.warm', environment: 'dev' }
    ]
  }
  const plan = parsePlan(JSON.stringify(file), 'plan.json')
  const gh = (id: number, name: string, runnerName: string | null, start = 0): GitHubJob => ({
    id,
    name,
    htmlUrl: `https://github.com/o/r/actions/runs/1/job/${id}`,
    runnerName,
    startedAt: iso(start),
    completedAt: iso(start + 60),
    runAttempt: 1
  })

  it('matches check names, "<name> <job id>" and GitHub default matrix names, then runners', () => {
    const view = classifyRun(plan, 'run', runRecord(), [
      record('api.dev.deploy', 'success', 1, 2, { runnerId: 'GitHub Actions 1-1-10-aa' }),
      record('web.dev.deploy', 'success', 1, 2, { runnerId: 'GitHub Actions 2-1-10-aa' }),
      record('db.dev.migrate', 'success', 1, 2, { runnerId: 'GitHub Actions 3-1-10-aa' }),
      record('cache.dev.warm', 'success', 100, 102, { runnerId: 'pool-runner-1-12-bb' })
    ])
    const links = linkJobs(view.jobs, [
      gh(1, 'api · dev · Deploy', 'GitHub Actions 1'),
      gh(2, 'run web.dev.deploy', 'GitHub Actions 2'),
      gh(3, 'run (db.dev.migrate, dev, db)', 'GitHub Actions 3'),
      gh(4, 'worker 0', 'pool-runner', 0),
      gh(5, 'worker 1', 'pool-runner', 90),
      gh(6, 'plan', 'GitHub Actions 9')
    ])
    expect(Object.fromEntries([...links].map(([id, job]) => [id, job.id]))).toEqual({
      'api.dev.deploy': 1,
      'web.dev.deploy': 2,
      'db.dev.migrate': 3,
      // Same runner name twice: the window that holds the job's start wins.
      'cache.dev.warm': 5
    })
  })

  it('prefers the runner that executed the job over a matrix job of the same name', () => {
    const view = classifyRun(plan, 'run', runRecord(), [
      record('api.dev.deploy', 'success', 1, 2, { runnerId: 'fan-out dev-1-10-aa' }),
      record('web.dev.deploy', 'pending')
    ])
    const links = linkJobs(view.jobs, [
      gh(1, 'api · dev · Deploy', 'GitHub Actions 1'),
      gh(2, 'fan-out dev', 'fan-out dev'),
      gh(3, 'run web.dev.deploy', 'GitHub Actions 3')
    ])
    // api ran on the fan-out runner; web never ran, so only its name links it.
    expect(links.get('api.dev.deploy')?.id).toBe(2)
    expect(links.get('web.dev.deploy')?.id).toBe(3)
    expect(links.has('db.dev.migrate')).toBe(false)
  })

  it('does not mistake a longer id or a prefix for a match', () => {
    expect(nameMatches('run web-api.dev.deploy', 'api.dev.deploy')).toBe(false)
    expect(nameMatches('run api.dev.deploy-2', 'api.dev.deploy')).toBe(false)
    expect(nameMatches('run (api.dev.deploy2, dev)', 'api.dev.deploy')).toBe(false)
    expect(nameMatches('api.dev.deploy', 'api.dev.deploy')).toBe(true)
  })
})

describe('inputs', () => {
  it.each<[string[], string[]]>([
    [[], ['failed', 'blocked', 'not-run']],
    [['any'], ['failed', 'blocked', 'not-run']],
    [['none'], []],
    [['failed'], ['failed']],
    [
      ['Failed', 'not-run'],
      ['failed', 'not-run']
    ]
  ])('fail-on %j means %j', (items, expected) => {
    expect([...parseFailOn(items)]).toEqual(expected)
  })

  it('refuses an unknown fail-on word, naming the choices', () => {
    expect(() => parseFailOn(['failed', 'cancelled'])).toThrow(
      /Input 'fail-on' has 'cancelled': use a list of failed, blocked, not-run, or 'any'/
    )
  })

  it("reads this attempt's run first on a re-run, back to the given one", () => {
    const env = { GITHUB_RUN_ID: '77', GITHUB_RUN_ATTEMPT: '3' }
    expect(candidateRunIds('gha-77-1-0123456789ab', env)).toEqual([
      'gha-77-3-0123456789ab',
      'gha-77-2-0123456789ab',
      'gha-77-1-0123456789ab'
    ])
    expect(candidateRunIds('gha-77-3-0123456789ab', env)).toEqual(['gha-77-3-0123456789ab'])
    expect(candidateRunIds('gha-78-1-0123456789ab', env)).toEqual(['gha-78-1-0123456789ab'])
    // A custom run id: attempt N works in <id>-aN.
    expect(candidateRunIds('my-run', env)).toEqual(['my-run-a3', 'my-run-a2', 'my-run'])
    expect(candidateRunIds('my-run-a2', env)).toEqual(['my-run-a3', 'my-run-a2'])
    expect(candidateRunIds('my-run', { GITHUB_RUN_ATTEMPT: '1' })).toEqual(['my-run'])
  })
})
