/**
 * What leaves the runner while a job runs: the redacted, capped log stream
 * (with a fake uploader), and the heartbeat (against the in-process server).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createTokenSource } from '../src/backend/auth.js'
import { BackendClient } from '../src/backend/client.js'
import { toBackendPlan } from '../src/backend/plan.js'
import { parsePlan } from '../src/plan/model.js'
import { startHeartbeat, type Heartbeat } from '../src/run/heartbeat.js'
import { LogStream, capLog, type LogUploader } from '../src/run/logstream.js'
import { REDACTED, Redactor, envValues } from '../src/run/redact.js'
import {
  startCoordinationServer,
  type CoordinationServer,
  IMMEDIATE_CONSISTENCY
} from '../testing/coordination-server.js'
import { silenceWorkflowCommands } from '../testing/quiet.js'
import { Scratch } from '../testing/scratch.js'

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** Waits for a condition, generously: a busy machine may be slow, never wrong. */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

describe('Redactor', () => {
  it('removes every token the source has handed out, including ones minted later', () => {
    const issued = ['eyJhbGciOi.first-token.sig']
    const redactor = new Redactor([], () => issued)
    expect(redactor.redact('auth eyJhbGciOi.first-token.sig ok')).toBe(`auth ${REDACTED} ok`)
    issued.push('eyJhbGciOi.second-token.sig')
    expect(redactor.redact('a eyJhbGciOi.first-token.sig b eyJhbGciOi.second-token.sig')).toBe(
      `a ${REDACTED} b ${REDACTED}`
    )
  })

  it('learns ::add-mask:: values, also when the mask comes after the secret was printed', () => {
    const redactor = new Redactor()
    const log = 'password is hunter2-xyz\n::add-mask::hunter2-xyz\nagain hunter2-xyz\n'
    const out = redactor.redact(log)
    expect(out).not.toContain('hunter2-xyz')
    expect(out).toBe(`password is ${REDACTED}\n::add-mask::${REDACTED}\nagain ${REDACTED}\n`)
    // Learnt once, it stays learnt for text that no longer carries the command.
    expect(redactor.redact('later: hunter2-xyz')).toBe(`later: ${REDACTED}`)
  })

  it('reads masks from CRLF output', () => {
    const redactor = new Redactor()
    expect(redactor.redact('::add-mask::crlf-secret\r\nvalue crlf-secret\r\n')).toBe(
      `::add-mask::${REDACTED}\r\nvalue ${REDACTED}\r\n`
    )
  })

  it('unescapes mask values the way the runner does (core.setSecret escapes them)', () => {
    const redactor = new Redactor()
    // core.setSecret('line-one\nline-two') and a secret holding a percent sign.
    const log =
      '::add-mask::line-one%0Aline-two\n::add-mask::50%25-off\nline-one\nline-two\n50%-off\n'
    const out = redactor.redact(log)
    for (const secret of ['line-one', 'line-two', '50%-off', 'line-one%0Aline-two', '50%25-off']) {
      expect(out).not.toContain(secret)
    }
  })

  it('masks a multi-line secret whole and line by line', () => {
    const key = '-----BEGIN KEY-----\nMIIEabcdefgh\nqrstuvwxyz12\n-----END KEY-----'
    const redactor = new Redactor([key])
    expect(redactor.redact(`key:\n${key}\n`)).toBe(`key:\n${REDACTED}\n`)
    // Printed with a prefix on each line, every line is still removed.
    const prefixed = key
      .split('\n')
      .map(line => `> ${line}`)
      .join('\n')
    const out = redactor.redact(prefixed)
    for (const line of key.split('\n')) expect(out).not.toContain(line)
  })

  it('ignores values shorter than 3 characters, and trims values', () => {
    const redactor = new Redactor(['ab', 'x', '', '  ', '  padded-secret  '])
    redactor.learnFrom('::add-mask::no\n')
    expect(redactor.redact('a b ab x no the padded-secret here')).toBe(
      `a b ab x no the ${REDACTED} here`
    )
    expect(new Redactor(['abc']).redact('xabcx')).toBe(`x${REDACTED}x`)
  })

  it('replaces the longest secret first, so one that contains another goes whole', () => {
    const redactor = new Redactor(['abc', 'abcdef-long'])
    expect(redactor.redact('[abcdef-long] [abc]')).toBe(`[${REDACTED}] [${REDACTED}]`)
    const learnt = new Redactor()
    expect(learnt.redact('::add-mask::tok\n::add-mask::tok-and-more\nuse tok-and-more')).toBe(
      `::add-mask::${REDACTED}\n::add-mask::${REDACTED}\nuse ${REDACTED}`
    )
  })

  it('leaves text with no secrets unchanged', () => {
    const text = 'plain output\nwith $pecial (chars) [and] *stars*\n'
    expect(new Redactor(['nothing-like-it']).redact(text)).toBe(text)
  })
})

describe('envValues', () => {
  it('returns the values of the named variables, dropping unset and empty ones', () => {
    const env = { API_KEY: 'k-123', EMPTY: '', OTHER: 'unrelated' }
    expect(envValues(['API_KEY', 'MISSING', 'EMPTY'], env)).toEqual(['k-123'])
    expect(envValues([], env)).toEqual([])
  })
})

/** An uploader that records every text it was given. */
function recordingUploader(): { upload: LogUploader; texts: string[] } {
  const texts: string[] = []
  return {
    texts,
    upload: async text => {
      texts.push(text)
      return { logRef: `ns/runs/r/logs/job.log#${texts.length}` }
    }
  }
}

const scratch = new Scratch([])
afterAll(() => {
  scratch.cleanUp()
})

function streamWith(
  upload: LogUploader,
  extra: { maxBytes?: number; spoolFile?: string; intervalMs?: number; secrets?: string[] } = {}
) {
  const warn = jest.fn<(message: string) => void>()
  const stream = new LogStream({
    upload,
    redactor: new Redactor(extra.secrets ?? []),
    intervalMs: extra.intervalMs ?? 60_000,
    maxBytes: extra.maxBytes,
    spoolFile: extra.spoolFile,
    warn
  })
  return { stream, warn }
}

describe('LogStream', () => {
  it('uploads the whole log so far each time, and remembers the last logRef', async () => {
    const { upload, texts } = recordingUploader()
    const { stream } = streamWith(upload)
    stream.append('line 1\n')
    await stream.flush(false)
    stream.append('line 2\n')
    await stream.flush(false)
    expect(texts).toEqual(['line 1\n', 'line 1\nline 2\n'])
    expect(stream.logRef).toBe('ns/runs/r/logs/job.log#2')
    expect(stream.uploads).toBe(2)
  })

  it('skips an upload when nothing changed since the last one', async () => {
    const { upload, texts } = recordingUploader()
    const { stream } = streamWith(upload)
    await stream.flush(false)
    expect(texts).toEqual([])
    stream.append('only line\n')
    await stream.flush(false)
    await stream.flush(false)
    await stream.flush(true)
    expect(texts).toEqual(['only line\n'])
  })

  it('stores an empty log once, at the end, so a silent job still has one', async () => {
    const { upload, texts } = recordingUploader()
    const { stream } = streamWith(upload)
    await stream.flush(false)
    await stream.flush(true)
    await stream.flush(true)
    expect(texts).toEqual([''])
    expect(stream.logRef).toBeDefined()
  })

  it('sends one upload when a streaming flush and the final flush meet', async () => {
    const { upload, texts } = recordingUploader()
    const { stream } = streamWith(upload)
    stream.append('text\n')
    await Promise.all([stream.flush(false), stream.flush(true)])
    expect(texts).toEqual(['text\n'])
  })

  it('redacts what it uploads and the tail it quotes', async () => {
    const { upload, texts } = recordingUploader()
    const { stream } = streamWith(upload, { secrets: ['s3cr3t-value'] })
    stream.append('start\nusing s3cr3t-value\n::add-mask::late-mask\n')
    stream.append('a\nb\nlate-mask\n')
    await stream.flush(true)
    expect(texts[0]).not.toMatch(/s3cr3t-value|late-mask/)
    expect(stream.tail(2)).toBe(`b\n${REDACTED}`)
    expect(stream.tail(100)).not.toMatch(/s3cr3t-value|late-mask/)
  })

  it('streams on its interval, and the final flush uploads the rest and stops streaming', async () => {
    const { upload, texts } = recordingUploader()
    const { stream } = streamWith(upload, { intervalMs: 40 })
    stream.start()
    stream.append('first\n')
    await waitFor(() => texts.length >= 1, 'the first streamed upload')
    expect(texts[0]).toBe('first\n')
    const streamed = texts.length
    stream.append('second\n')
    await stream.flush(true)
    expect(texts.slice(streamed)).toEqual(['first\nsecond\n'])
    stream.append('after the end\n')
    // Several intervals: a streaming upload would have happened by now.
    await sleep(400)
    expect(texts.at(-1)).toBe('first\nsecond\n')
  })

  it('lets the final upload land after a streaming upload still in flight', async () => {
    const texts: string[] = []
    let release!: () => void
    const gate = new Promise<void>(resolve => (release = resolve))
    const { stream } = streamWith(async text => {
      texts.push(text)
      if (texts.length === 1) await gate
      return { logRef: 'ref' }
    })
    stream.append('early\n')
    const streaming = stream.flush(false)
    while (texts.length === 0) await sleep(1)
    // The job prints more while the streaming upload is still on the wire.
    stream.append('late\n')
    const final = stream.flush(true)
    release()
    await Promise.all([streaming, final])
    expect(texts).toEqual(['early\n', 'early\nlate\n'])
  })

  it('warns once while streaming uploads fail, retries, and reports a failed final upload', async () => {
    let failing = true
    const texts: string[] = []
    const { stream, warn } = streamWith(async text => {
      if (failing) throw new Error('503 Service Unavailable')
      texts.push(text)
      return { logRef: 'ref' }
    })
    for (const line of ['a\n', 'b\n', 'c\n']) {
      stream.append(line)
      await stream.flush(false)
    }
    expect(warn).toHaveBeenCalledTimes(1)
    expect(warn.mock.calls[0][0]).toMatch(/Uploading the job log.*503 Service Unavailable/)
    await stream.flush(true)
    expect(warn).toHaveBeenCalledTimes(2)
    // Nothing was recorded as uploaded: once the backend is back, the whole log goes.
    failing = false
    await stream.flush(true)
    expect(texts).toEqual(['a\nb\nc\n'])
    expect(stream.logRef).toBe('ref')
  })

  it('a single 429 on a mid-stream upload prints no warning when the final log is stored', async () => {
    let refusals = 1
    const texts: string[] = []
    const { stream, warn } = streamWith(async text => {
      if (refusals-- > 0) throw new Error('429 RATE_LIMITED: Too many requests')
      texts.push(text)
      return { logRef: 'ref' }
    })
    stream.append('a\n')
    await stream.flush(false)
    stream.append('b\n')
    await stream.flush(false)
    expect(await stream.flush(true)).toBe(true)
    expect(texts.at(-1)).toBe('a\nb\n')
    expect(warn).not.toHaveBeenCalled()
  })

  it('mirrors the raw (unredacted) output to the spool file', () => {
    const dir = scratch.tempDir('orun-logstream-')
    const spoolFile = join(dir, 'spool.txt')
    const { upload } = recordingUploader()
    const { stream } = streamWith(upload, { spoolFile, secrets: ['spool-secret'] })
    expect(readFileSync(spoolFile, 'utf8')).toBe('')
    stream.append('one spool-secret\n')
    stream.append('two ünïcødé\n')
    expect(readFileSync(spoolFile, 'utf8')).toBe('one spool-secret\ntwo ünïcødé\n')
  })

  it('caps what it uploads, keeping the end', async () => {
    const { upload, texts } = recordingUploader()
    const { stream } = streamWith(upload, { maxBytes: 1_000 })
    for (let i = 0; i < 200; i++) stream.append(`line ${i}\n`)
    await stream.flush(true)
    expect(Buffer.byteLength(texts[0])).toBeLessThanOrEqual(1_000)
    expect(texts[0]).toMatch(/^\[orun action: the first \d+ bytes/)
    expect(texts[0].endsWith('line 198\nline 199\n')).toBe(true)
  })
})

describe('LogStream with a log of any size', () => {
  const MiB = 1024 * 1024

  it('holds a bounded tail in memory while 100 MB pass through it, and stores the end', async () => {
    const { upload, texts } = recordingUploader()
    const maxBytes = MiB
    const { stream } = streamWith(upload, { maxBytes, secrets: ['late-secret-value'] })
    const line = `${'x'.repeat(99)}\n`
    const chunk = line.repeat(655) // 65,500 bytes
    stream.append('::add-mask::late-secret-value\n')
    let mostHeld = 0
    let rawBytes = '::add-mask::late-secret-value\n'.length
    for (; rawBytes < 100 * MiB; rawBytes += chunk.length) {
      stream.append(chunk)
      mostHeld = Math.max(mostHeld, stream.heldChars)
    }
    stream.append('last line late-secret-value\n')
    rawBytes += 'last line late-secret-value\n'.length
    // At most twice the cap and its margin, whatever the size of the log.
    expect(mostHeld).toBeLessThanOrEqual(2 * (maxBytes + 64 * 1024) + chunk.length)
    await stream.flush(true)
    const stored = texts[0]
    expect(Buffer.byteLength(stored)).toBeLessThanOrEqual(maxBytes)
    const [note, ...kept] = stored.split('\n')
    expect(note).toMatch(/^\[orun action: the first \d+ bytes of this log were cut/)
    // Cut at a line boundary: every kept line is whole.
    expect(kept.slice(0, -2).every(l => l === 'x'.repeat(99))).toBe(true)
    expect(stored.endsWith('x\nlast line ***\n')).toBe(true)
    // The note counts every byte cut, in memory and by the cap (the kept secret is redacted).
    const cut = Number(/the first (\d+) bytes/.exec(note)![1])
    const keptBytes = Buffer.byteLength(stored) - Buffer.byteLength(note) - 1
    expect(cut + keptBytes).toBe(rawBytes - ('late-secret-value'.length - 3))
  })

  it('spaces live uploads by the bytes sent (at most the cap), not by the size of the whole log', async () => {
    jest.useFakeTimers()
    try {
      const { upload, texts } = recordingUploader()
      const { stream } = streamWith(upload, { maxBytes: MiB, intervalMs: 1_000 })
      const chunk = `${'y'.repeat(1023)}\n`.repeat(1024) // 1 MiB
      for (let i = 0; i < 20; i++) stream.append(chunk)
      stream.start()
      await jest.advanceTimersByTimeAsync(1_000)
      expect(texts).toHaveLength(1)
      stream.append('more\n')
      // 1 MiB sent: the next upload within 16 s (64 KiB/s); by the raw 20 MiB it would be 320 s.
      await jest.advanceTimersByTimeAsync(16_000)
      expect(texts).toHaveLength(2)
      expect(texts[1].endsWith('more\n')).toBe(true)
      await stream.flush(true)
    } finally {
      jest.useRealTimers()
    }
  })
})

describe('capLog', () => {
  const cutBytes = (capped: string) => Number(/the first (\d+) bytes/.exec(capped)![1])
  const keptPart = (capped: string) => capped.slice(capped.indexOf('\n') + 1)

  it('returns a log within the cap unchanged', () => {
    expect(capLog('short log\n', 100)).toBe('short log\n')
    const exact = 'x'.repeat(100)
    expect(capLog(exact, 100)).toBe(exact)
  })

  it('keeps the end, says how many bytes were cut, and stays within the cap', () => {
    const text = Array.from({ length: 5_000 }, (_, i) => `output line ${i}`).join('\n')
    const capped = capLog(text, 2_048)
    expect(Buffer.byteLength(capped)).toBeLessThanOrEqual(2_048)
    const kept = keptPart(capped)
    expect(text.endsWith(kept)).toBe(true)
    expect(kept.length).toBeGreaterThan(1_000)
    expect(cutBytes(capped) + Buffer.byteLength(kept)).toBe(Buffer.byteLength(text))
    expect(capped).toContain('GitHub Actions job log')
  })

  it('cuts at a line boundary when the kept end holds one', () => {
    const text = Array.from({ length: 300 }, (_, i) => `line number ${i}`).join('\n') + '\n'
    const capped = capLog(text, 1_000)
    const kept = keptPart(capped)
    expect(text.endsWith(kept)).toBe(true)
    expect(text[text.length - kept.length - 1]).toBe('\n')
    expect(kept.startsWith('line number ')).toBe(true)
    expect(cutBytes(capped) + Buffer.byteLength(kept)).toBe(Buffer.byteLength(text))
  })

  it.each([
    ['two-byte', 'é'],
    ['three-byte', '€'],
    ['four-byte', '😀']
  ])('never splits a %s character at the cut', (_name, char) => {
    const text = `head ${char.repeat(3_000)} tail`
    for (const maxBytes of [1_001, 1_002, 1_003, 1_004]) {
      const capped = capLog(text, maxBytes)
      expect(capped).not.toContain('\uFFFD')
      const kept = keptPart(capped)
      expect(text.endsWith(kept)).toBe(true)
      expect(cutBytes(capped) + Buffer.byteLength(kept)).toBe(Buffer.byteLength(text))
      expect(Buffer.byteLength(capped)).toBeLessThanOrEqual(maxBytes)
    }
  })
})

describe('startHeartbeat', () => {
  let server: CoordinationServer
  let client: BackendClient
  const heartbeats: Heartbeat[] = []
  const savedEnv = {
    url: process.env.ACTIONS_ID_TOKEN_REQUEST_URL,
    token: process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN
  }
  const plan = parsePlan(
    JSON.stringify({
      metadata: { checksum: 'sha256-beefbeefbeef0000' },
      jobs: [{ id: 'hb@dev.smoke', component: 'hb', dependsOn: [] }]
    }),
    'plan.json'
  )

  beforeAll(async () => {
    silenceWorkflowCommands()
    server = await startCoordinationServer({ ...IMMEDIATE_CONSISTENCY, rateLimit: false })
    Object.assign(process.env, server.tokenEnv())
    client = new BackendClient({
      baseUrl: server.url,
      tokens: createTokenSource({ log: () => {} }),
      // A failed beat is not retried for long: the next beat is the retry.
      maxAttempts: 1
    })
  })

  afterEach(() => {
    for (const heartbeat of heartbeats.splice(0)) heartbeat.stop()
    server.setOptions({ heartbeatTimeoutMs: 300_000 })
    server.clearFaults()
  })

  afterAll(async () => {
    jest.restoreAllMocks()
    await server.close()
    if (savedEnv.url === undefined) delete process.env.ACTIONS_ID_TOKEN_REQUEST_URL
    else process.env.ACTIONS_ID_TOKEN_REQUEST_URL = savedEnv.url
    if (savedEnv.token === undefined) delete process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN
    else process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN = savedEnv.token
  })

  /** A fresh run whose only job this runner has claimed. */
  async function claimedJob(runnerId: string): Promise<string> {
    const runId = `hb-${randomBytes(4).toString('hex')}`
    await client.createRun({ plan: toBackendPlan(plan.file, plan.id), runId })
    expect((await client.claim(runId, 'hb@dev.smoke', runnerId)).claimed).toBe(true)
    return runId
  }

  const beatsOf = (runnerId: string) =>
    server.requests.filter(r => r.route === 'heartbeat' && r.runnerId === runnerId)

  function start(runId: string, runnerId: string, intervalMs: number) {
    const onAbort = jest.fn<() => void>()
    const warn = jest.fn<(message: string) => void>()
    const heartbeat = startHeartbeat({
      client,
      runId,
      jobId: 'hb@dev.smoke',
      runnerId,
      intervalMs,
      onAbort,
      warn
    })
    heartbeats.push(heartbeat)
    return { heartbeat, onAbort, warn }
  }

  it('beats at its interval while the job is owned, and stops when told', async () => {
    const runnerId = 'runner-beats'
    const runId = await claimedJob(runnerId)
    const started = Date.now()
    const { heartbeat, onAbort, warn } = start(runId, runnerId, 100)
    await waitFor(() => heartbeat.beats >= 3, 'three heartbeats')
    heartbeat.stop()
    const beats = heartbeat.beats
    const at = beatsOf(runnerId).map(r => r.at)
    // The claim itself was the first proof of life: the first beat waits a whole interval,
    // and each next one an interval after the previous answer, never sooner.
    expect(at[0] - started).toBeGreaterThanOrEqual(100 - 2)
    for (let i = 1; i < at.length; i++) expect(at[i] - at[i - 1]).toBeGreaterThanOrEqual(100 - 2)
    expect(beatsOf(runnerId).every(r => r.status === 200)).toBe(true)
    expect(beatsOf(runnerId)).toHaveLength(beats)
    // Stopped means stopped: several intervals later, not one more beat.
    await sleep(400)
    expect(beatsOf(runnerId)).toHaveLength(beats)
    expect(heartbeat.aborted).toBe(false)
    expect(onAbort).not.toHaveBeenCalled()
    expect(warn).not.toHaveBeenCalled()
  })

  it('calls onAbort once and stops beating when another runner took the job over', async () => {
    const runnerId = 'runner-lost'
    const runId = await claimedJob(runnerId)
    // Another runner takes the job over (the lease window set to 0 ms makes it stale at once)
    // before this runner's first beat.
    server.setOptions({ heartbeatTimeoutMs: 0 })
    await waitFor(
      () => Date.parse(server.jobsOf(runId)[0].startedAt!) < Date.now(),
      'a stale lease'
    )
    const takeover = await client.claim(runId, 'hb@dev.smoke', 'runner-new')
    expect(takeover).toEqual({ claimed: true, takeover: true })
    server.setOptions({ heartbeatTimeoutMs: 300_000 })
    const { heartbeat, onAbort } = start(runId, runnerId, 100)
    await waitFor(() => onAbort.mock.calls.length > 0, 'onAbort')
    // Several intervals later: no second beat, no second call.
    await sleep(400)

    expect(onAbort).toHaveBeenCalledTimes(1)
    expect(heartbeat.aborted).toBe(true)
    expect(beatsOf(runnerId)).toHaveLength(1)
    expect(server.jobsOf(runId)[0]).toMatchObject({ status: 'running', runnerId: 'runner-new' })
  })

  it('warns about a failed beat and keeps beating', async () => {
    const runnerId = 'runner-flaky'
    const runId = await claimedJob(runnerId)
    server.inject('heartbeat', { kind: 'status', status: 503, count: 1 })
    const { heartbeat, onAbort, warn } = start(runId, runnerId, 80)
    // The failed beat, then two that went through.
    await waitFor(() => heartbeat.beats >= 2, 'two heartbeats after the failed one')
    heartbeat.stop()
    expect(warn).toHaveBeenCalledTimes(1)
    expect(warn.mock.calls[0][0]).toMatch(/Heartbeat for hb@dev\.smoke failed/)
    // (A faulted request is answered before its body is read, so it is found by its path.)
    const statuses = server.requests
      .filter(r => r.route === 'heartbeat' && r.path.includes(runId))
      .map(r => r.status)
    expect(statuses.slice(0, 3)).toEqual([503, 200, 200])
    expect(onAbort).not.toHaveBeenCalled()
  })
})
