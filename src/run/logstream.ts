import { appendFileSync, writeFileSync } from 'node:fs'
import type { Redactor } from './redact.js'

/**
 * Streams a job's log to the backend while it runs. Each upload replaces the
 * stored log, so every upload re-sends the whole log so far: uploads are
 * spaced by the configured interval, stretched for big logs so a live view
 * never costs megabytes per second, skipped when nothing changed, and the
 * stored copy is capped (keeping the end, where failures show).
 *
 * Secrets: text is redacted whole, then capped (a cut never leaves part of a
 * secret in clear), and a mid-stream upload holds back the unterminated last
 * line until its newline or the final flush, so a secret split across two
 * writes is never stored half-printed (and unrecognised) in between.
 */
export const DEFAULT_MAX_LOG_BYTES = 4 * 1024 * 1024
/** The output quoted in a failed job's error text is cut to this, keeping the end. */
export const MAX_TAIL_BYTES = 8 * 1024
/** Upload at most this many bytes per second of interval, on average. */
const BYTES_PER_SECOND_BUDGET = 64 * 1024

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

export class LogStream {
  private raw = ''
  private uploadedLength = -1
  private timer?: NodeJS.Timeout
  private queue: Promise<void> = Promise.resolve()
  private warned = false
  /** The upload in flight, so a flush that gives up can abandon it too. */
  private current?: AbortController
  logRef?: string
  uploads = 0

  constructor(private readonly options: LogStreamOptions) {
    if (options.spoolFile) writeFileSync(options.spoolFile, '')
  }

  append(chunk: string): void {
    this.raw += chunk
    if (this.options.spoolFile) appendFileSync(this.options.spoolFile, chunk)
  }

  /**
   * The text that is uploaded: redacted, then cut from the front past the cap.
   * Mid-stream (not final) it ends at the last complete line.
   */
  snapshot(final = true): string {
    return capLog(
      this.options.redactor.redact(this.raw.slice(0, this.uploadable(final))),
      this.options.maxBytes ?? DEFAULT_MAX_LOG_BYTES
    )
  }

  /** How much of the raw output an upload may carry: all of it at the end, else whole lines. */
  private uploadable(final: boolean): number {
    return final ? this.raw.length : this.raw.lastIndexOf('\n') + 1
  }

  start(): void {
    const schedule = () => {
      const stretch = (Buffer.byteLength(this.raw) / BYTES_PER_SECOND_BUDGET) * 1000
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
    return this.raw.length === this.uploadedLength
  }

  private async upload(final: boolean, signal: AbortSignal, boundMs?: number): Promise<void> {
    const length = this.uploadable(final)
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
      const { logRef } = await this.options.upload(this.snapshot(final), {
        budgetMs: final ? boundMs : 0,
        signal: current.signal
      })
      this.logRef = logRef
      this.uploadedLength = length
      this.uploads++
    } catch (error) {
      if (current.signal.aborted) return // the flush that gave up says so
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
    const text = this.options.redactor
      .redact(this.raw)
      .trimEnd()
      .split('\n')
      .slice(-lines)
      .join('\n')
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

export function capLog(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text)
  if (bytes.length <= maxBytes) return text
  const note = (cut: number) =>
    `[orun action: the first ${cut} bytes of this log were cut to keep it under ${maxBytes} bytes; ` +
    'the full log is in the GitHub Actions job log]\n'
  // The note counts against the cap too; with the largest possible count it is longest.
  const budget = Math.max(0, maxBytes - Buffer.byteLength(note(bytes.length)))
  // A character split by the cut decodes to U+FFFD: drop those bytes too.
  const kept = bytes
    .subarray(bytes.length - budget)
    .toString('utf8')
    .replace(/^\uFFFD+/, '')
  return note(bytes.length - Buffer.byteLength(kept)) + kept
}
