import { appendFileSync, closeSync, openSync, readSync, writeFileSync } from 'node:fs'
import { StringDecoder } from 'node:string_decoder'
import type { Redactor } from './redact.js'

/**
 * Streams a job's log to the backend while it runs. Each upload replaces the
 * stored log, so every upload re-sends the stored log so far: uploads are
 * spaced by the configured interval, stretched by the size of the last upload
 * (at most the cap) so a live view never costs megabytes per second, skipped
 * when nothing changed, and the stored copy is capped (keeping the end, where
 * failures show, cut at a line boundary). Only a bounded tail of the output is
 * held in memory (LogTail): the whole output is in the spool file and in the
 * GitHub log.
 *
 * Secrets: text is redacted whole, then capped (a cut never leaves part of a
 * secret in clear), and a mid-stream upload holds back the unterminated last
 * line until its newline or the final flush, so a secret split across two
 * writes is never stored half-printed (and unrecognised) in between.
 */
export const DEFAULT_MAX_LOG_BYTES = 4 * 1024 * 1024
/** The output quoted in a failed job's error text is cut to this, keeping the end. */
export const MAX_TAIL_BYTES = 8 * 1024
/** Mid-stream uploads failed this many times in a row: the live view is down, say so (once). */
const MID_STREAM_FAILURES_TO_WARN = 3
/** Upload at most this many bytes per second of interval, on average. */
const BYTES_PER_SECOND_BUDGET = 64 * 1024
/**
 * Kept beyond the cap before a tail cut mid-line: what is dropped in front of the
 * stored text when a line longer than the whole tail had to be cut (so a secret the
 * in-memory cut split, shorter than this, leaves nothing of itself).
 */
const MID_LINE_MARGIN = 64 * 1024

export interface LogUploader {
  /** budgetMs: how long it may retry (0: one request); signal: abandon it at once. */
  (text: string, call: { budgetMs?: number; signal: AbortSignal }): Promise<{ logRef: string }>
}

/** Bounds the final flush: the result is reported already, so the log may not hold the job up. */
export interface FlushBound {
  timeoutMs: number
  /** Cuts the flush short (the runner is told to stop). */
  signal?: AbortSignal
}

export interface LogStreamOptions {
  upload: LogUploader
  redactor: Redactor
  intervalMs: number
  maxBytes?: number
  /** Raw output is mirrored here so the post step can upload it if this process dies. */
  spoolFile?: string
  warn: (message: string) => void
}

/**
 * The last part of a job's output, bounded in memory: it keeps at least `keep` characters
 * (so at least `keep` bytes) and at most twice that, dropping whole lines from the front.
 * The job's `::add-mask::` values are learnt from every complete line as it arrives, so a
 * mask is known even after its line was dropped.
 */
export class LogTail {
  private text = ''
  /** Characters dropped from the front, and their UTF-8 bytes. */
  private droppedChars = 0
  droppedBytes = 0
  /** Absolute position up to which masks were learnt (always a line end). */
  private learnt = 0
  /** The held text starts inside a line (one longer than the whole tail was cut). */
  private midLine = false

  constructor(
    private readonly redactor: Redactor,
    private readonly keep: number
  ) {}

  /** Characters appended so far. */
  get total(): number {
    return this.droppedChars + this.text.length
  }

  /** Characters held in memory. */
  get heldChars(): number {
    return this.text.length
  }

  append(chunk: string): void {
    this.text += chunk
    const lineEnd = this.text.lastIndexOf('\n') + 1
    const from = this.learnt - this.droppedChars
    if (lineEnd > from) {
      this.redactor.learnFrom(this.text.slice(from, lineEnd))
      this.learnt = this.droppedChars + lineEnd
    }
    if (this.text.length > 2 * this.keep) this.dropFront()
  }

  private dropFront(): void {
    const cut = this.text.length - this.keep
    // Whole lines (masks in them are learnt already); a line longer than the tail is cut inside.
    const newline = this.text.lastIndexOf('\n', cut - 1)
    const at = newline >= 0 ? newline + 1 : cut
    this.midLine = newline < 0
    const dropped = this.text.slice(0, at)
    this.droppedBytes += Buffer.byteLength(dropped)
    this.droppedChars += at
    this.text = this.text.slice(at)
    this.learnt = Math.max(this.learnt, this.droppedChars)
  }

  /** Absolute end of what an upload may carry: everything at the end, else whole lines. */
  uploadable(final: boolean): number {
    return this.droppedChars + (final ? this.text.length : this.text.lastIndexOf('\n') + 1)
  }

  /** The held text up to an absolute position, redacted, then capped at a line boundary. */
  stored(upTo: number, maxBytes: number): string {
    let redacted = this.redactor.redact(this.text.slice(0, upTo - this.droppedChars))
    let cutBytes = this.droppedBytes
    if (this.midLine) {
      // The in-memory cut fell inside a line: drop the rest of it (or a margin of it).
      const newline = redacted.indexOf('\n')
      const drop = newline >= 0 ? newline + 1 : Math.min(redacted.length, MID_LINE_MARGIN)
      cutBytes += Buffer.byteLength(redacted.slice(0, drop))
      redacted = redacted.slice(drop)
    }
    return capLog(redacted, maxBytes, cutBytes)
  }

  /** The held text, redacted (for the quoted tail of a failed job). */
  redacted(): string {
    return this.redactor.redact(this.text)
  }
}

export class LogStream {
  private readonly held: LogTail
  private uploadedLength = -1
  /** Bytes of the last upload: the pause before the next one grows with it. */
  private lastUploadBytes = 0
  private timer?: NodeJS.Timeout
  private queue: Promise<void> = Promise.resolve()
  private warned = false
  private failuresInRow = 0
  /** The upload in flight, so a flush that gives up can abandon it too. */
  private current?: AbortController
  logRef?: string
  uploads = 0

  constructor(private readonly options: LogStreamOptions) {
    if (options.spoolFile) writeFileSync(options.spoolFile, '')
    this.held = new LogTail(options.redactor, tailChars(options.maxBytes))
  }

  /** Characters of output held in memory (bounded whatever the size of the log). */
  get heldChars(): number {
    return this.held.heldChars
  }

  append(chunk: string): void {
    this.held.append(chunk)
    if (this.options.spoolFile) appendFileSync(this.options.spoolFile, chunk)
  }

  /**
   * The text that is uploaded: redacted, then cut from the front past the cap.
   * Mid-stream (not final) it ends at the last complete line.
   */
  snapshot(final = true): string {
    return this.held.stored(
      this.held.uploadable(final),
      this.options.maxBytes ?? DEFAULT_MAX_LOG_BYTES
    )
  }

  start(): void {
    const schedule = () => {
      const stretch = (this.lastUploadBytes / BYTES_PER_SECOND_BUDGET) * 1000
      this.timer = setTimeout(
        async () => {
          await this.flush(false)
          if (this.timer) schedule()
        },
        Math.max(this.options.intervalMs, stretch)
      )
      this.timer.unref()
    }
    schedule()
  }

  /**
   * Uploads the log if it changed; true when the stored log is up to date. Failures while
   * streaming only warn; the final upload reports. With a bound, the flush (and the upload
   * it waits behind) is abandoned, with a warning, when the time runs out or the signal aborts.
   */
  async flush(final: boolean, bound?: FlushBound): Promise<boolean> {
    if (final && this.timer) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    const stop = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const onSignal = () => stop.abort()
    if (bound) {
      timer = setTimeout(onSignal, bound.timeoutMs)
      if (bound.signal?.aborted) stop.abort()
      bound.signal?.addEventListener('abort', onSignal, { once: true })
    }
    // One upload at a time, in call order: a timer flush and the final flush that meet
    // neither send the same text twice nor let an older snapshot land last.
    const turn = this.queue.then(() =>
      stop.signal.aborted ? undefined : this.upload(final, stop.signal, bound?.timeoutMs)
    )
    this.queue = turn
    try {
      if (!bound) {
        await turn
      } else {
        const gaveUp = new Promise<boolean>(resolve => {
          if (stop.signal.aborted) resolve(true)
          stop.signal.addEventListener('abort', () => resolve(true), { once: true })
        })
        if (await Promise.race([turn.then(() => false), gaveUp])) {
          this.current?.abort()
          const why = bound.signal?.aborted
            ? 'the runner is stopping'
            : `it did not finish within ${Math.round(bound.timeoutMs / 1000)} s`
          this.options.warn(
            `Gave up uploading the job log to the backend: ${why}. The job's result is reported already; the full log is in this GitHub Actions log.`
          )
          return false
        }
      }
    } finally {
      clearTimeout(timer)
      bound?.signal?.removeEventListener('abort', onSignal)
    }
    return this.held.total === this.uploadedLength
  }

  private async upload(final: boolean, signal: AbortSignal, boundMs?: number): Promise<void> {
    const length = this.held.uploadable(final)
    if (length === this.uploadedLength) return
    // An empty log is stored once, at the end (so every finished job has one), never mid-stream.
    if (!final && !length) return
    const current = new AbortController()
    const onAbort = () => current.abort()
    signal.addEventListener('abort', onAbort, { once: true })
    this.current = current
    try {
      // Mid-stream, one request: the next tick retries anyway. The final upload retries
      // until its flush's bound ends it (unbounded: the client's own budget).
      const text = this.snapshot(final)
      const { logRef } = await this.options.upload(text, {
        budgetMs: final ? boundMs : 0,
        signal: current.signal
      })
      this.logRef = logRef
      this.uploadedLength = length
      this.lastUploadBytes = Buffer.byteLength(text)
      this.failuresInRow = 0
      this.uploads++
    } catch (error) {
      if (current.signal.aborted) return // the flush that gave up says so
      // Mid-stream, the next tick tries again and the final upload reports: a passing refusal
      // (one 429) is not worth a warning, only a live view that keeps failing.
      if (!final && ++this.failuresInRow < MID_STREAM_FAILURES_TO_WARN) return
      if (final || !this.warned) {
        this.options.warn(
          `Uploading the job log to the backend failed: ${(error as Error).message}`
        )
        this.warned = true
      }
    } finally {
      signal.removeEventListener('abort', onAbort)
      if (this.current === current) this.current = undefined
    }
  }

  /** Last lines of output, for the error text reported with a failed job: redacted, then cut to MAX_TAIL_BYTES. */
  tail(lines: number): string {
    const text = this.held.redacted().trimEnd().split('\n').slice(-lines).join('\n')
    return keepEnd(text, MAX_TAIL_BYTES)
  }
}

/** The last maxBytes bytes of a text (whole characters), marked with … when cut. */
export function keepEnd(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text)
  if (bytes.length <= maxBytes) return text
  const marker = '…'
  return (
    marker +
    bytes
      .subarray(bytes.length - (maxBytes - Buffer.byteLength(marker)))
      .toString('utf8')
      .replace(/^\uFFFD+/, '')
  )
}

/**
 * The end of a log within maxBytes, cut at a line boundary (inside a line only when its
 * last line alone is over the cap), behind a note saying how many bytes were cut; alreadyCut
 * counts bytes dropped before (the in-memory tail).
 */
export function capLog(text: string, maxBytes: number, alreadyCut = 0): string {
  const bytes = Buffer.from(text)
  if (bytes.length <= maxBytes && !alreadyCut) return text
  const note = (cut: number) =>
    `[orun action: the first ${cut} bytes of this log were cut to keep it under ${maxBytes} bytes; ` +
    'the full log is in the GitHub Actions job log]\n'
  // The note counts against the cap too; with the largest possible count it is longest.
  const budget = Math.max(0, maxBytes - Buffer.byteLength(note(bytes.length + alreadyCut)))
  const from = Math.max(0, bytes.length - budget)
  // A character split by the cut decodes to U+FFFD: drop those bytes too.
  let kept = bytes
    .subarray(from)
    .toString('utf8')
    .replace(/^\uFFFD+/, '')
  if (from > 0 && bytes[from - 1] !== 0x0a) {
    const newline = kept.indexOf('\n')
    if (newline >= 0 && newline < kept.length - 1) kept = kept.slice(newline + 1)
  }
  return note(bytes.length - Buffer.byteLength(kept) + alreadyCut) + kept
}

/** Characters the in-memory tail keeps: the cap (a character is at least a byte) and a margin. */
function tailChars(maxBytes = DEFAULT_MAX_LOG_BYTES): number {
  return maxBytes + MID_LINE_MARGIN
}

/**
 * A spooled log as the main step would have stored it, read in chunks so memory stays
 * bounded: masks are learnt from every line, only the tail is kept; ending is appended.
 */
export function storedLogOfFile(
  file: string,
  redactor: Redactor,
  ending: string,
  maxBytes = DEFAULT_MAX_LOG_BYTES
): string {
  const tail = new LogTail(redactor, tailChars(maxBytes))
  const decoder = new StringDecoder('utf8')
  const buffer = Buffer.alloc(1024 * 1024)
  const fd = openSync(file, 'r')
  try {
    for (let read; (read = readSync(fd, buffer, 0, buffer.length, null)) > 0;)
      tail.append(decoder.write(buffer.subarray(0, read)))
  } finally {
    closeSync(fd)
  }
  tail.append(decoder.end() + ending)
  return tail.stored(tail.uploadable(true), maxBytes)
}
