import type { BackendClient } from '../backend/client.js'

/**
 * Spacing for one pool worker's requests. Every worker of the repository
 * shares one rate limit (burst 20, 5 requests/s), and a worker does not know
 * how many others there are: each one spaces its own requests by a gap that
 * grows by half after an answer of 429 and shrinks by a step after each
 * request answered without one (additive increase, multiplicative decrease,
 * as TCP shares a link). A pool that asks for more than the limit settles near
 * it, with few refusals; a pool that asks for less never waits. The gap is
 * capped low (a few seconds): a worker that backed off far would starve while
 * the others take its share.
 */
export interface PacerOptions {
  now: () => number
  sleep: (ms: number) => Promise<void>
  /** Gap to start with (default 0: no wait until the first 429). */
  initialGapMs?: number
  /** Shrink per request answered without a 429 (default 100 ms). */
  stepMs?: number
  /** The gap never grows past this (default 4 s). */
  maxGapMs?: number
}

/** The least gap after a 429: one worker alone must leave the bucket a moment to refill. */
export const MIN_BACKOFF_GAP_MS = 300

export class Pacer {
  gapMs: number
  /** Answers of 429 this pacer has seen. */
  refusals = 0
  private nextAt = 0
  private readonly stepMs: number
  private readonly maxGapMs: number

  constructor(private readonly options: PacerOptions) {
    this.gapMs = options.initialGapMs ?? 0
    this.stepMs = options.stepMs ?? 100
    this.maxGapMs = options.maxGapMs ?? 4_000
  }

  /** Waits for this worker's next slot and books it (concurrent callers queue up). */
  async turn(): Promise<void> {
    const now = this.options.now()
    const at = Math.max(now, this.nextAt)
    this.nextAt = at + this.gapMs
    if (at > now) await this.options.sleep(at - now)
  }

  /** After a request: how many 429s it met on the way (the client retries them). */
  settle(rateLimited: number): void {
    if (rateLimited > 0) {
      this.refusals += rateLimited
      this.gapMs = Math.min(this.maxGapMs, Math.max(MIN_BACKOFF_GAP_MS, this.gapMs * 1.5))
    } else {
      this.gapMs = Math.max(0, this.gapMs - this.stepMs)
    }
  }
}

/** The client calls that send requests; each waits for its turn. */
const PACED = new Set([
  'createRun',
  'getRun',
  'claim',
  'heartbeat',
  'update',
  'runnable',
  'listJobs',
  'jobStatus',
  'uploadLog',
  'readLog'
])

/**
 * The same client, with every request spaced by the pacer. Its stats are the
 * client's own, so 429s are counted once, wherever they happen.
 */
export function pacedClient(client: BackendClient, pacer: Pacer): BackendClient {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver)
      if (typeof property !== 'string' || !PACED.has(property) || typeof value !== 'function')
        return value
      return async (...args: unknown[]) => {
        await pacer.turn()
        const before = target.stats.rateLimited
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)
        } finally {
          pacer.settle(target.stats.rateLimited - before)
        }
      }
    }
  })
}
