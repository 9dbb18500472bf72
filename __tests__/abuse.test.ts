/**
 * The abuse half of the fault-and-abuse suite: what a crafted plan or a
 * leaking job tries, and what comes out. Each part is tested on the module
 * that does the work and through the bundled plan/run actions run as
 * processes (dist/), the way a runner starts them:
 * - secrets never reach the backend, in any encoding GitHub's own masker
 *   covers, in the stored log or the error text of a failed job; a secret
 *   split across writes or cut by the log cap is never stored in part;
 * - plan text (job ids, components, environments) never becomes a workflow
 *   command in the runner's log, nor markup, HTML or a link in a summary;
 * - the plan id (from metadata.checksum) is validated before it names files;
 * - outputs and the summary are checked against GitHub's limits;
 * - validation of huge plans is refused early and does not blow the stack.
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { UserError } from '../src/common/errors.js'
import {
  commandSafe,
  inline,
  markdownCode,
  markdownLiteral,
  mermaidLabel
} from '../src/common/escape.js'
import { depthOf, parsePlan, type Plan, type PlanFile, type PlanJob } from '../src/plan/model.js'
import {
  JOB_OUTPUTS_LIMIT_BYTES,
  LARGE_RUN_SHARE,
  RUN_OUTPUTS_LIMIT_BYTES,
  STEP_SUMMARY_LIMIT_BYTES,
  checkOutputSizes,
  fitSummary
} from '../src/plan/output-limits.js'
import { renderPlanSummary } from '../src/plan/summary.js'
import { LogStream, MAX_TAIL_BYTES, capLog, type LogUploader } from '../src/run/logstream.js'
import { Redactor } from '../src/run/redact.js'
import { renderRunSummary } from '../src/run/summary.js'
import {
  STANDIN_DIR,
  cleanupActionProcesses,
  runActionProcess,
  type ActionProcessResult,
  localRunInputs
} from '../testing/action-process.js'
import { startCoordinationServer, type CoordinationServer } from '../testing/coordination-server.js'
import { expectCleanFailure } from '../testing/expect-failure.js'
import { workflowCommands } from '../testing/workflow-commands.js'
import { Scratch } from '../testing/scratch.js'

const scratch = new Scratch([])
const tempDir = (prefix: string) => scratch.tempDir(prefix)

let server: CoordinationServer
beforeAll(async () => {
  server = await startCoordinationServer({ rateLimit: false })
})
afterAll(async () => {
  await server.close()
  cleanupActionProcesses()
  scratch.cleanUp()
})

// ---------------------------------------------------------------------------------------------
// A secret, and an oracle that finds any piece of it in a text, however encoded.

/** Holds characters that every encoding below changes: quotes, &, <, /, +, space, %, non-ASCII. */
const SECRET = 'Sup3r$ecret/Value+with "quotes" & <tags> 50% ü-end'

/** Every way a piece of the secret could be read back from the text. */
function readings(text: string): string[] {
  const out = [text]
  out.push(
    text.replace(/(%[0-9A-Fa-f]{2})+/g, run => {
      try {
        return decodeURIComponent(run)
      } catch {
        return run
      }
    })
  )
  out.push(out[1].replace(/\+/g, ' '))
  out.push(
    text
      .replace(/\\u([0-9a-fA-F]{4})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)))
      .replace(/\\(["\\/])/g, '$1')
      .replace(/\\n/g, '\n')
  )
  out.push(
    text
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&apos;|&#39;/g, "'")
      .replace(/&amp;/g, '&')
  )
  out.push(text.replace(/%25/g, '%'))
  // base64 and base64url runs, decoded from each of the four character offsets.
  for (const run of text.match(/[A-Za-z0-9+/_-]{4,}={0,2}/g) ?? []) {
    for (let offset = 0; offset < 4; offset++) {
      out.push(Buffer.from(run.slice(offset), 'base64').toString('latin1'))
      out.push(Buffer.from(run.slice(offset), 'base64').toString('utf8'))
    }
  }
  return out
}

/** The pieces (of `window` characters or more) of the secret that can be read back from the text. */
function leaks(text: string, secret = SECRET, window = 6): string[] {
  const pieces = new Set<string>()
  const candidates = readings(text)
  for (let start = 0; start + window <= secret.length; start++) {
    const piece = secret.slice(start, start + window)
    const latin1 = Buffer.from(piece, 'utf8').toString('latin1')
    if (candidates.some(c => c.includes(piece) || c.includes(latin1))) pieces.add(piece)
  }
  return [...pieces]
}

/** The secret the way jobs print it: raw, and in each encoding. */
function encodings(secret = SECRET): Record<string, string> {
  const bytes = Buffer.from(secret)
  return {
    raw: `password=${secret}`,
    // base64 inside longer encoded text, at each of the three byte alignments.
    'base64 (user:password)': Buffer.from(`user:${secret}`).toString('base64'),
    'base64, 1 byte before': Buffer.concat([Buffer.from('a'), bytes, Buffer.from('!')]).toString(
      'base64'
    ),
    'base64, 2 bytes before': Buffer.concat([Buffer.from('ab'), bytes]).toString('base64'),
    'base64, 3 bytes before': Buffer.concat([
      Buffer.from('abc'),
      bytes,
      Buffer.from('xy')
    ]).toString('base64'),
    base64url: Buffer.concat([Buffer.from('k='), bytes]).toString('base64url'),
    'URL query': `https://ci.example/cb?token=${encodeURIComponent(secret)}&next=1`,
    'form body': new URLSearchParams({ password: secret, user: 'ci' }).toString(),
    'JSON string': JSON.stringify({ password: secret, n: 1 }),
    'Go JSON (\\u003c...)': JSON.stringify({ password: secret }).replace(
      /[<>&]/g,
      c => `\\u00${c.charCodeAt(0).toString(16)}`
    ),
    'XML text': `<pw>${secret.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')}</pw>`,
    'workflow command data': `::debug::${secret.replace(/%/g, '%25')}`
  }
}

describe('the leak oracle', () => {
  it('finds the secret in every encoding before redaction (so a clean result means something)', () => {
    for (const [name, text] of Object.entries(encodings())) {
      expect({ name, found: leaks(text).length > 10 }).toEqual({ name, found: true })
    }
  })
})

describe('redaction covers the encodings GitHub masks', () => {
  it('removes the secret in each encoding, wherever it sits in a line', () => {
    const redactor = new Redactor([SECRET])
    for (const [name, text] of Object.entries(encodings())) {
      const out = redactor.redact(`before ${text} after\n`)
      expect({ name, leaks: leaks(out) }).toEqual({ name, leaks: [] })
      expect(out).toContain('***')
    }
  })

  it('covers values learnt from ::add-mask:: and tokens minted later alike', () => {
    const token = 'eyJhbGciOi.minted-later-token.sig'
    const issued: string[] = []
    const redactor = new Redactor([], () => issued)
    issued.push(token)
    const late = 'late-secret-value-42'
    const text =
      `auth ${Buffer.from(`x:${token}`).toString('base64')}\n` +
      `::add-mask::${late}\n` +
      `q=${encodeURIComponent(late + '/&')}\n`
    const out = redactor.redact(text)
    expect(leaks(out, token)).toEqual([])
    expect(leaks(out, late)).toEqual([])
  })

  it('leaves ordinary output alone', () => {
    const text = 'compiling 12 files\nok: https://example.com/docs?a=1&b=2 {"x": "y"}\n'
    expect(new Redactor([SECRET]).redact(text)).toBe(text)
  })
})

// ---------------------------------------------------------------------------------------------
// The log stream: whole lines only mid-stream, cut after redaction.

function recordingStream(options: { maxBytes?: number; secrets?: string[] } = {}) {
  const texts: string[] = []
  const upload: LogUploader = async text => {
    texts.push(text)
    return { logRef: `ref-${texts.length}` }
  }
  const stream = new LogStream({
    upload,
    redactor: new Redactor(options.secrets ?? [SECRET]),
    intervalMs: 60_000,
    maxBytes: options.maxBytes,
    warn: () => {}
  })
  return { stream, texts }
}

describe('the log stream never stores part of a secret', () => {
  it('holds back an unterminated line mid-stream, so a secret split across writes is never stored in part', async () => {
    const { stream, texts } = recordingStream()
    const half = Math.floor(SECRET.length / 2)
    stream.append('step 1 ok\npassword: ' + SECRET.slice(0, half))
    await stream.flush(false)
    expect(texts).toEqual(['step 1 ok\n'])
    stream.append(SECRET.slice(half) + ' (end)\nstep 2 ')
    await stream.flush(false)
    expect(texts[1]).toBe('step 1 ok\npassword: *** (end)\n')
    // The final flush stores the unterminated rest too.
    stream.append('done')
    await stream.flush(true)
    expect(texts[2]).toBe('step 1 ok\npassword: *** (end)\nstep 2 done')
    for (const text of texts) expect(leaks(text)).toEqual([])
  })

  it('caps after redaction: a cut that falls inside a secret leaves none of it', async () => {
    const maxBytes = 4096
    // One line longer than the cap: the cut cannot fall at a line boundary there.
    const after = 'y'.repeat(maxBytes - 170) + '\n'
    const raw = 'x'.repeat(5000) + '\nsecret ' + SECRET + after
    // The premise: on the raw text, the cap's cut falls inside the secret (seen with a
    // stand-in of the same size, which nothing redacts).
    const standIn = '#'.repeat(Buffer.byteLength(SECRET))
    const keptOfStandIn = capLog(raw.replace(SECRET, standIn), maxBytes).match(/#+/)?.[0] ?? ''
    expect(keptOfStandIn.length).toBeGreaterThan(6)
    expect(keptOfStandIn.length).toBeLessThan(standIn.length - 6)

    const { stream, texts } = recordingStream({ maxBytes })
    stream.append(raw)
    await stream.flush(true)
    expect(Buffer.byteLength(texts[0])).toBeLessThanOrEqual(maxBytes)
    expect(texts[0]).toMatch(/^\[orun action: the first \d+ bytes of this log were cut/)
    expect(leaks(texts[0])).toEqual([])
    // capLog alone, given raw text, would have kept the secret's second half: the order matters.
    expect(leaks(capLog(raw, maxBytes)).length).toBeGreaterThan(0)
  })

  it("cuts a failed job's quoted output after redaction too, keeping the end", () => {
    const { stream } = recordingStream()
    const filler = 'z'.repeat(MAX_TAIL_BYTES - 10)
    stream.append(`first line\nkey ${SECRET}${filler}\n`)
    const tail = stream.tail(15)
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(MAX_TAIL_BYTES)
    expect(tail.startsWith('…')).toBe(true)
    expect(tail.endsWith(filler)).toBe(true)
    expect(leaks(tail)).toEqual([])
  })
})

// ---------------------------------------------------------------------------------------------
// The escaping helpers, directly.

describe('escaping for the runner log', () => {
  it('inline: ids stay as they are; anything else becomes a one-line JSON literal', () => {
    expect(inline('api@dev.smoke')).toBe('api@dev.smoke')
    expect(inline('api.dev.smoke')).toBe('api.dev.smoke')
    expect(inline('x\n::set-output name=pwned::1')).toBe('"x\\n::set-output name=pwned::1"')
    expect(inline('::add-mask::x')).toBe('"::add-mask::x"')
    expect(inline('a##[set-output name=p]v')).toBe('"a#\\u0023[set-output name=p]v"')
    expect(inline('r\rtl\u202etxt')).toBe('"r\\rtl\\u202etxt"')
    for (const value of ['x\n::set-output name=pwned::1', 'a##[set-output name=p]v', 'r\rtl\u202e'])
      expect(JSON.parse(inline(value))).toBe(value)
  })

  it('commandSafe: defuses every line the runner would read as a command', () => {
    const text =
      'a\n::set-output name=x::1\r  ::add-mask::v\r\n\u00a0::warning::w\n\u0085::error::e\nb ##[set-output name=y]2'
    expect(workflowCommands(text).map(c => c.name)).toEqual([
      'set-output',
      'add-mask',
      'warning',
      'error',
      'set-output'
    ])
    const safe = commandSafe(text)
    expect(safe).toBe(
      'a\n\\::set-output name=x::1\n  \\::add-mask::v\n\u00a0\\::warning::w\n\u0085\\::error::e\nb #\\#[set-output name=y]2'
    )
    expect(workflowCommands(safe)).toEqual([])
  })
})

describe('escaping for markdown and mermaid', () => {
  it('markdownCode: a code span that holds any text literally', () => {
    expect(markdownCode('plain')).toBe('`plain`')
    expect(markdownCode('a`b')).toBe('``a`b``')
    expect(markdownCode('`x`')).toBe('`` `x` ``')
    expect(markdownCode('a|b', true)).toBe('`a\\|b`')
    expect(markdownCode('a|b')).toBe('`a|b`')
    expect(markdownCode('l1\nl2\r')).toBe('`l1\\nl2\\r`')
    expect(markdownCode(' padded ')).toBe('`  padded  `')
    expect(markdownCode('')).toBe('')
  })

  it('markdownLiteral: words as they are, anything that could be markup in a code span', () => {
    expect(markdownLiteral('dev')).toBe('dev')
    expect(markdownLiteral('prod eu-1')).toBe('prod eu-1')
    expect(markdownLiteral('api-edge · dev · Déploiement 2.1')).toBe(
      'api-edge · dev · Déploiement 2.1'
    )
    expect(markdownLiteral('see www.evil.example')).toBe('`see www.evil.example`')
    expect(markdownLiteral('<img src=x onerror=alert(1)>')).toBe('`<img src=x onerror=alert(1)>`')
    expect(markdownLiteral('[docs](https://evil.example)')).toBe('`[docs](https://evil.example)`')
    expect(markdownLiteral('@octo-org/admins')).toBe('`@octo-org/admins`')
    expect(markdownLiteral('*bold*')).toBe('`*bold*`')
  })

  it('mermaidLabel: quotes, HTML, entities and backticks become entity codes', () => {
    expect(mermaidLabel('a"<b>&#`x')).toBe('"a#quot;#60;b#62;#38;#35;#96;x"')
    expect(mermaidLabel('line\nbreak')).toBe('"line break"')
  })
})

// ---------------------------------------------------------------------------------------------
// Crafted plans.

const CHECKSUM = `sha256-${'c0ffee'.repeat(10)}abcd`

/** Names a hostile plan could carry: command syntax, markdown, HTML, links, pipes, backticks. */
const CRAFTED = {
  command: '::set-output name=pwned::1',
  backticks: '``` `code` ```',
  html: '<img src=x onerror=alert(1)>',
  link: '[click me](https://evil.example/)',
  pipes: 'a | b || c',
  mention: '@octo-org/admins #1'
}

function craftedPlan(): PlanFile {
  const jobs: PlanJob[] = []
  let previous: string | undefined
  for (const [name, text] of Object.entries(CRAFTED)) {
    const id = `${text}.${name}`
    jobs.push({
      id,
      component: text,
      environment: name === 'html' ? CRAFTED.html : CRAFTED.link,
      dependsOn: previous ? [previous] : [],
      steps: [{ id: 'smoke', run: 'echo ran' }]
    })
    previous = id
  }
  return { metadata: { name: 'crafted', checksum: CHECKSUM }, jobs }
}

/** Markdown with its code spans removed (CommonMark: a backtick run closes at the next run of the same length). */
function outsideCodeSpans(markdown: string): string {
  let out = ''
  let at = 0
  while (at < markdown.length) {
    const open = /`+/g
    open.lastIndex = at
    const start = open.exec(markdown)
    if (!start) break
    out += markdown.slice(at, start.index)
    const fence = start[0]
    const close = new RegExp(`(?<!\`)${fence}(?!\`)`, 'g')
    close.lastIndex = start.index + fence.length
    const end = close.exec(markdown)
    if (!end) {
      out += markdown.slice(start.index)
      return out
    }
    out += ' CODE '
    at = end.index + fence.length
  }
  return out + markdown.slice(at)
}

/** Splits a markdown table row on the pipes that are not escaped. */
const tableCells = (row: string) => row.split(/(?<!\\)\|/).slice(1, -1)

/** The summary keeps its structure, and nothing plan-made renders as HTML, a link or a mention. */
function expectInertSummary(summary: string, minRows: number): void {
  const prose = outsideCodeSpans(summary.replace(/```mermaid\n[\s\S]*?\n```/, ''))
  expect(prose).not.toMatch(/<|\]\(|https?:|@octo|#1\b/)
  // Every table row has as many cells as its table's header.
  const lines = summary.split('\n')
  let columns = 0
  let rows = 0
  for (const [index, line] of lines.entries()) {
    if (lines[index + 1]?.startsWith('|---')) columns = tableCells(line).length
    else if (line.startsWith('|') && !line.startsWith('|---')) {
      expect({ line, cells: tableCells(line).length }).toEqual({ line, cells: columns })
      rows++
    }
  }
  expect(rows).toBeGreaterThanOrEqual(minRows)
  // Every line of the chart is one the renderer reads as intended.
  const chart = /```mermaid\n([\s\S]*?)\n```/.exec(summary)
  if (chart) {
    for (const line of chart[1].split('\n')) {
      expect(line).toMatch(
        /^(flowchart LR| {2}subgraph env\d+\["[^"<>`]*"\]| {2}end| {4}j\d+\["[^"<>`]*"\]| {2}j\d+ --> j\d+)$/
      )
    }
  }
}

describe('plan text in the summaries is shown literally', () => {
  it('the plan summary: chart, table and code spans hold, nothing renders', () => {
    const plan = parsePlan(JSON.stringify(craftedPlan()), 'crafted.json')
    const summary = renderPlanSummary({ plan, runId: 'gha-1-1-x', planFile: '/tmp/p.json' })
    expectInertSummary(summary, 7)
    // Ids come back exactly from the code spans.
    expect(summary).toContain(markdownCode(`${CRAFTED.backticks}.backticks`, true))
  })

  it('the run summary: ids, log refs and details hold too', () => {
    const summary = renderRunSummary(
      'gha-1-1-abc',
      'runner `x`',
      [
        {
          jobId: `${CRAFTED.html}.x`,
          status: 'failed',
          durationMs: 1000,
          waitMs: 0,
          attempts: 1,
          tookOver: false,
          detail: `upstream failed: ${CRAFTED.link} | ${CRAFTED.command}\n${CRAFTED.mention}`
        }
      ],
      { sent: 1, rateLimited: 0 }
    )
    expectInertSummary(summary, 1)
  })
})

describe('the plan id from metadata.checksum', () => {
  const planWith = (checksum: unknown) =>
    JSON.stringify({ metadata: { checksum }, jobs: [{ id: 'a@dev.x', dependsOn: [] }] })

  it.each([
    'sha256-../../../../tmp/pwned',
    '../../etc/passwd-0123456789',
    'sha256-0123456789a', // 11 hex digits
    'sha256-0123456789ab/',
    'sha256-' + 'g'.repeat(64),
    'sha256-0123456789ab\n::set-output name=x::1',
    'md5-0123456789abcdef'
  ])('refuses %j with a user error naming the fix', checksum => {
    expect(() => parsePlan(planWith(checksum), 'p.json')).toThrow(UserError)
    expect(() => parsePlan(planWith(checksum), 'p.json')).toThrow(
      /metadata\.checksum .*not a sha256 digest.*Re-compile it with `orun plan`/
    )
  })

  it.each([
    ['sha256-0123456789abcdef', '0123456789ab'],
    ['0123456789ab', '0123456789ab'],
    ['sha256-ABCDEF012345', 'ABCDEF012345']
  ])('accepts %j (plan id %j)', (checksum, id) => {
    expect(parsePlan(planWith(checksum), 'p.json').id).toBe(id)
  })

  it('refuses, for orun, names with line breaks, control characters or ##[ (other readers accept them)', () => {
    const file = craftedPlan()
    file.jobs[1].environment = 'dev\n::set-output name=pwned::1'
    const text = JSON.stringify(file)
    expect(() => parsePlan(text, 'p.json', { orunSafeNames: true })).toThrow(
      `Plan file p.json: job ${inline(file.jobs[1].id)} has a environment with a line break, a control character or "##[". orun prints it`
    )
    // The status action reads such a plan to show it: escaped, like everything else.
    expect(parsePlan(text, 'p.json').byId.get(file.jobs[1].id)!.environment).toBe(
      'dev\n::set-output name=pwned::1'
    )
    file.jobs[1].environment = 'dev'
    file.jobs[2].checkName = 'x##[set-output name=pwned]yes'
    expect(() => parsePlan(JSON.stringify(file), 'p.json', { orunSafeNames: true })).toThrow(
      /has a checkName with a line break, a control character or "##\["/
    )
  })
})

describe('sizes', () => {
  const write = jest.spyOn(process.stdout, 'write')
  afterAll(() => write.mockRestore())

  it("refuses an output over GitHub's per-job limit, naming it", () => {
    write.mockImplementation(() => true)
    const big = 'x'.repeat(JOB_OUTPUTS_LIMIT_BYTES / 2 + 1)
    expect(() => checkOutputSizes({ jobs: big, 'run-id': 'r' })).toThrow(
      /Output 'jobs' \(1001 KB\) exceeds GitHub's limit of 1000 KB of job outputs per job.*'environments' or 'components'/
    )
  })

  it('warns when the outputs fit one by one but not together, saying which to map', () => {
    const lines: string[] = []
    write.mockImplementation(chunk => (lines.push(String(chunk)), true))
    const third = 'x'.repeat(JOB_OUTPUTS_LIMIT_BYTES / 5)
    checkOutputSizes({ jobs: third, 'job-ids': third, matrix: third, 'run-id': 'r' })
    expect(lines.join('')).toMatch(
      /^::warning::The plan step's outputs total 1201 KB.*map only one of 'jobs'/m
    )
  })

  it("warns when the outputs take a large share of the workflow run's 50 MB, and not below it", () => {
    const lines: string[] = []
    write.mockImplementation(chunk => (lines.push(String(chunk)), true))
    // 2 x 0.95 MB each: 5.7 MB of 50 MB once mapped, and beyond one job's 1 MB as well.
    const most = 'x'.repeat(0.95 * (JOB_OUTPUTS_LIMIT_BYTES / 2))
    checkOutputSizes({ jobs: most, 'job-ids': most, matrix: most, 'run-id': 'r' })
    expect(lines.join('')).toMatch(
      /^::warning::The plan step's outputs total 2851 KB of the 50 MB GitHub allows for the outputs of a whole workflow run \(every job's outputs together\): 17 plan steps like this in one run would reach it/m
    )
    lines.length = 0
    // Just under the share: the per-job warning only.
    const under = 'x'.repeat((RUN_OUTPUTS_LIMIT_BYTES * LARGE_RUN_SHARE) / 2 / 3 - 1)
    checkOutputSizes({ jobs: under, 'job-ids': under, matrix: under })
    expect(lines.join('')).toMatch(/outputs total 2500 KB, more than GitHub's 1000 KB/)
    expect(lines.join('')).not.toMatch(/whole workflow run/)
  })

  it('replaces a summary over 1 MiB with a note, and warns', () => {
    const lines: string[] = []
    write.mockImplementation(chunk => (lines.push(String(chunk)), true))
    expect(fitSummary('small')).toBe('small')
    expect(lines).toEqual([])
    const note = fitSummary('y'.repeat(STEP_SUMMARY_LIMIT_BYTES + 1))
    expect(note).toMatch(/over GitHub's step summary limit of 1024 KiB/)
    expect(lines.join('')).toMatch(/^::warning::The plan summary is 1025 KiB/m)
  })

  it('a 20,000-job chain validates, and its depth is computed without recursion', () => {
    const jobs = Array.from({ length: 20_000 }, (_, i) => ({
      id: `j${i}`,
      dependsOn: i ? [`j${i - 1}`] : []
    }))
    const plan: Plan = parsePlan(
      JSON.stringify({ metadata: { checksum: CHECKSUM }, jobs: jobs.reverse() }),
      'p.json'
    )
    expect(plan.order[0].id).toBe('j0')
    expect(depthOf(plan, 'j19999')).toBe(19_999)
  })
})

// ---------------------------------------------------------------------------------------------
// Through the bundled actions.

const PLAN_BUNDLE = 'dist/plan/index.js'
const RUN_BUNDLE = 'dist/run/index.js'
/** Commands an action may print itself; plan text must never add others. */
const ALLOWED = new Set(['add-mask', 'debug', 'group', 'endgroup', 'warning', 'error', 'notice'])

function workspaceWith(plan: string): string {
  const dir = tempDir('orun-abuse-ws-')
  writeFileSync(path.join(dir, 'plan.json'), plan)
  return dir
}

function runPlanAction(plan: string): Promise<ActionProcessResult> {
  return runActionProcess(PLAN_BUNDLE, {
    inputs: { 'orun-path': STANDIN_DIR, upload: 'false', 'plan-file': 'plan.json' },
    cwd: workspaceWith(plan),
    timeoutMs: 60_000
  })
}

/**
 * Commands neither the action nor orun meant. orun wraps each step's output in
 * `::stop-commands::orun-stop-<jobId>`: allowed when its token is exactly that.
 */
const unexpectedCommands = (stdout: string, jobIds: readonly string[] = []) =>
  workflowCommands(stdout).filter(
    command =>
      !ALLOWED.has(command.name) &&
      !(command.name === 'stop-commands' && jobIds.some(id => command.data === `orun-stop-${id}`))
  )

describe('the bundled plan action with a crafted plan', () => {
  it('keeps ids literal in its outputs and summary, and prints no command', async () => {
    const file = craftedPlan()
    const result = await runPlanAction(JSON.stringify(file))
    expect(result.exitCode).toBe(0)
    expect(unexpectedCommands(result.stdout)).toEqual([])
    expect(JSON.parse(result.outputs['job-ids'])).toEqual(file.jobs.map(job => job.id))
    expectInertSummary(result.summary, 7)
  }, 90_000)

  it.each([
    [
      'a line break',
      'evil\n::set-output name=pwned::1',
      'job "evil\\n::set-output name=pwned::1" has a id'
    ],
    [
      'the legacy marker',
      'evil##[set-output name=pwned]1',
      'job "evil#\\u0023[set-output name=pwned]1" has a id'
    ]
  ])(
    'refuses a job id with %s cleanly, showing it escaped, injecting nothing',
    async (_, id, shown) => {
      const file = craftedPlan()
      file.jobs[0].id = id
      file.jobs[1].dependsOn = [id]
      const result = await runPlanAction(JSON.stringify(file))
      const message = expectCleanFailure(result)
      expect(message).toContain(shown)
      expect(unexpectedCommands(result.stdout)).toEqual([])
      expect(result.outputs).toEqual({})
    },
    90_000
  )

  it('refuses a crafted checksum before writing anything', async () => {
    const file = craftedPlan()
    file.metadata.checksum = 'sha256-../../../../../pwned'
    const result = await runPlanAction(JSON.stringify(file))
    expect(expectCleanFailure(result)).toMatch(/metadata\.checksum .*not a sha256 digest/)
    expect(result.outputs).toEqual({})
  }, 90_000)

  it('refuses a 50,000-job plan: validated in linear time, then its outputs are over the limit', async () => {
    const jobs = Array.from({ length: 50_000 }, (_, i) => ({
      id: `svc${i}.dev.smoke`,
      component: `svc${i}`,
      environment: 'dev',
      dependsOn: [],
      steps: [{ id: 's', run: 'true' }]
    }))
    const result = await runPlanAction(JSON.stringify({ metadata: { checksum: CHECKSUM }, jobs }))
    expect(expectCleanFailure(result)).toMatch(
      /^Outputs 'jobs' \(\d+ KB\), 'job-ids' \(\d+ KB\), 'matrix'/
    )
    expect(result.outputs).toEqual({})
  }, 90_000)

  it('refuses outputs over GitHub limits, naming them', async () => {
    // 200 jobs with ids of 2,600 characters: each list output passes 1 MB (UTF-16).
    const jobs = Array.from({ length: 200 }, (_, i) => ({
      id: `${'long-'.repeat(520)}${i}`,
      component: 'c',
      environment: 'dev',
      dependsOn: [],
      steps: [{ id: 's', run: 'true' }]
    }))
    const result = await runPlanAction(JSON.stringify({ metadata: { checksum: CHECKSUM }, jobs }))
    const message = expectCleanFailure(result)
    expect(message).toMatch(
      /^Outputs 'jobs' \(\d+ KB\), 'job-ids' \(\d+ KB\), 'matrix' \(\d+ KB\) exceed GitHub's limit/
    )
    expect(result.outputs).toEqual({})
  }, 90_000)
})

describe('the bundled run action with a crafted plan', () => {
  function runRun(plan: string, inputs: Record<string, string>, env: Record<string, string> = {}) {
    return runActionProcess(RUN_BUNDLE, {
      inputs: {
        ...localRunInputs(server.url),
        ...inputs
      },
      env: { ...server.tokenEnv(), ...env },
      cwd: workspaceWith(plan),
      timeoutMs: 120_000
    })
  }

  it('prints plan text without commands, and its summary holds', async () => {
    const file = craftedPlan()
    const runId = `gha-7000000001-1-${randomBytes(4).toString('hex')}`
    const result = await runRun(JSON.stringify(file), {
      'run-id': runId,
      components: Object.values(CRAFTED).join(',')
    })
    expect(result.stderr).toBe('')
    expect(result.exitCode).toBe(0)
    // orun's output passes through too: it prints the ids in its own lines.
    expect(
      unexpectedCommands(
        result.stdout,
        file.jobs.map(job => job.id)
      )
    ).toEqual([])
    expect(result.stdout).toContain(`"${CRAFTED.command}.command"`)
    expect(Object.keys(JSON.parse(result.outputs['job-results']))).toEqual(
      file.jobs.map(job => job.id)
    )
    expectInertSummary(result.summary, file.jobs.length)
  }, 150_000)

  it('refuses a job whose id orun would print as a command, before claiming it', async () => {
    const file = craftedPlan()
    const evil = 'evil\n::set-output name=pwned::1'
    file.jobs[0].id = evil
    file.jobs[1].dependsOn = [evil]
    const runId = `gha-7000000001-1-${randomBytes(4).toString('hex')}`
    const result = await runRun(JSON.stringify(file), { 'run-id': runId, job: evil })
    expect(expectCleanFailure(result)).toContain('job "evil\\n::set-output name=pwned::1" has a id')
    expect(unexpectedCommands(result.stdout)).toEqual([])
    expect(server.jobsOf(runId)).toEqual([])
  }, 150_000)

  it('refuses a crafted checksum before running or writing anything', async () => {
    const file = craftedPlan()
    file.metadata.checksum = 'sha256-/../../../../tmp/orun-abuse-pwned'
    const result = await runRun(JSON.stringify(file), {
      'run-id': `gha-7000000001-1-${randomBytes(4).toString('hex')}`,
      job: file.jobs[0].id
    })
    expect(expectCleanFailure(result)).toMatch(/metadata\.checksum .*not a sha256 digest/)
    expect(existsSync('/tmp/orun-abuse-pwned')).toBe(false)
  }, 150_000)

  it('a failing job that prints the secret in every encoding: neither its error text nor its log keeps any of it', async () => {
    const lines = Object.values(encodings()).map(text => `'${text.replace(/'/g, `'\\''`)}'`)
    const file = {
      metadata: { name: 'leaky', checksum: CHECKSUM },
      jobs: [
        {
          id: 'leaky@dev.smoke',
          component: 'leaky',
          environment: 'dev',
          dependsOn: [],
          steps: [{ id: 'smoke', run: `printf '%s\\n' ${lines.join(' ')}; exit 3` }]
        }
      ]
    }
    const runId = `gha-7000000001-1-${randomBytes(4).toString('hex')}`
    const result = await runRun(
      JSON.stringify(file),
      { 'run-id': runId, job: 'leaky@dev.smoke', 'redact-env': 'DB_PASSWORD' },
      { DB_PASSWORD: SECRET }
    )
    expect(result.exitCode).toBe(1)
    const record = server.jobsOf(runId)[0]
    expect(record.status).toBe('failed')
    expect(record.lastError).toMatch(/leaky@dev\.smoke.*last output:/)
    expect(record.lastError).toContain('***')
    expect(leaks(record.lastError!)).toEqual([])
    // What was stored (a read through the API may lag behind it, as on the service).
    const log = server.storedLog(runId, 'leaky@dev.smoke')!
    expect(log).toContain('***')
    expect(leaks(log)).toEqual([])
  }, 150_000)
})

describe('the run summary of a worker with many long job ids', () => {
  it("stays under GitHub's 1 MiB summary limit, saying how many jobs were left out", () => {
    const results = Array.from({ length: 400 }, (_, i) => ({
      jobId: `${'long-component-name-'.repeat(200)}${i}@dev.smoke`,
      status: 'success' as const,
      durationMs: 1000,
      waitMs: 0,
      attempts: 1,
      tookOver: false,
      logRef: `ns/runs/r/logs/${'x'.repeat(3000)}.log`
    }))
    const summary = renderRunSummary('run-1', 'runner-1', results, { sent: 1, rateLimited: 0 })
    expect(Buffer.byteLength(summary)).toBeLessThanOrEqual(1024 * 1024)
    expect(summary).toMatch(/…and \d+ more jobs: the summary is size-limited/)
  })
})
