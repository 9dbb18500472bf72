import { appendFileSync, writeFileSync } from 'node:fs'
import type { Redactor } from './redact.js'

/**
 * Streams a job's log to the backend while it runs. Each upload replaces the
 * stored log, so every upload re-sends the whole log so far: uploads are
 * spaced by the configured interval, stretched for big logs so a live view
 * never costs megabytes per second, skipped when nothing changed, and the
 * stored copy is capped (keeping the end, where failures show).
 */
export const DEFAULT_MAX_LOG_BYTES = 4 * 1024 * 1024
/** Upload at most this many bytes per second of interval, on average. */
const BYTES_PER_SECOND_BUDGET = 64 * 1024

export interface LogUploader {
  (text: string): Promise<{ logRef: string }>
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
  logRef?: string
  uploads = 0

  constructor(private readonly options: LogStreamOptions) {
    if (options.spoolFile) writeFileSync(options.spoolFile, '')
  }

  append(chunk: string): void {
    this.raw += chunk
    if (this.options.spoolFile) appendFileSync(this.options.spoolFile, chunk)
  }

  /** The text that is uploaded: redacted, and cut from the front past the cap. */
  snapshot(): string {
    return capLog(
      this.options.redactor.redact(this.raw),
      this.options.maxBytes ?? DEFAULT_MAX_LOG_BYTES
    )
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

  /** Uploads the log if it changed. Failures while streaming only warn; the final upload reports. */
  async flush(final: boolean): Promise<void> {
    if (final && this.timer) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    // One upload at a time, in call order: a timer flush and the final flush that meet
    // neither send the same text twice nor let an older snapshot land last.
    const turn = this.queue.then(() => this.upload(final))
    this.queue = turn
    await turn
  }

  private async upload(final: boolean): Promise<void> {
    if (this.raw.length === this.uploadedLength) return
    // An empty log is stored once, at the end (so every finished job has one), never mid-stream.
    if (!final && !this.raw) return
    const length = this.raw.length
    try {
      const { logRef } = await this.options.upload(this.snapshot())
      this.logRef = logRef
      this.uploadedLength = length
      this.uploads++
    } catch (error) {
      if (final || !this.warned) {
        this.options.warn(
          `Uploading the job log to the backend failed: ${(error as Error).message}`
        )
        this.warned = true
      }
    }
  }

  /** Last lines of output, for the error text reported with a failed job. */
  tail(lines: number): string {
    return this.options.redactor.redact(this.raw).trimEnd().split('\n').slice(-lines).join('\n')
  }
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
