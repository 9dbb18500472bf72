import { BackendError, type BackendClient, type ClientStats } from '../backend/client.js'
import type { LimitHint } from '../common/limit-hint.js'

/**
 * Spacing for one pool worker's requests. Every worker of the repository
 * shares one rate limit (burst 20, 5 requests/s), and a worker does not know
 * how many others there are: each one spaces its own requests by a gap that
 * grows by half after an answer of 429 and shrinks by a step after each
 * request answered without one (additive increase, multiplicative decrease,
 * as TCP shares a link). A pool that asks for more than the limit settles near
 * it (32 workers: a gap of about 32 / 5 s = 6.4 s each) with few refusals; a
 * pool that asks for less never waits. A 429 is retried here, in turn, rather
 * than by the client on its own clock, so refused requests are paced too.
 */
export interface PacerOptions {
  now: () => number
  sleep: (ms: number) => Promise<void>
  /** Gap to start with (default 0: no wait until the first 429). */
  initialGapMs?: number
  /** Shrink per request answered without a 429 (default 100 ms). */
  stepMs?: number
  /** The gap never grows past this (default 15 s: the fair share of a 75-worker pool). */
  maxGapMs?: number
}

/** The least gap after a 429: one worker alone must leave the bucket a moment to refill. */
export const MIN_BACKOFF_GAP_MS = 300
/** A call answered 429 this many times in a row fails (with the gap at its cap: minutes). */
export const MAX_PACED_ATTEMPTS = 60

export class Pacer {
  gapMs: number
  /** Answers of 429 this pacer has seen. */
  refusals = 0
  /** When the last one came (the now() clock). */
  lastRefusedAt?: number
  private nextAt = 0
  private readonly stepMs: number
  private readonly maxGapMs: number

  constructor(private readonly options: PacerOptions) {
    this.gapMs = options.initialGapMs ?? 0
    this.stepMs = options.stepMs ?? 100
    this.maxGapMs = options.maxGapMs ?? 15_000
  }

  /** Waits for this worker's next slot and books it (concurrent callers queue up). */
  async turn(): Promise<void> {
    const now = this.options.now()
    const at = Math.max(now, this.nextAt)
    this.nextAt = at + this.gapMs
    if (at > now) await this.options.sleep(at - now)
  }

  /** After a request answered without a 429. */
  answered(): void {
    this.gapMs = Math.max(0, this.gapMs - this.stepMs)
  }

  /** After an answer of 429: a wider gap, and no next slot before the server's Retry-After. */
  refused(retryAfterMs = 1_000): void {
    this.refusals++
    this.lastRefusedAt = this.options.now()
    this.gapMs = Math.min(this.maxGapMs, Math.max(MIN_BACKOFF_GAP_MS, this.gapMs * 1.5))
    this.nextAt = Math.max(this.nextAt, this.options.now() + Math.max(this.gapMs, retryAfterMs))
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
 * The same client, with every request spaced by the pacer and every 429
 * retried after its turn. Calls named in `followUps` go out at once the first
 * time: each follows a paced call (a claim follows the read that found the
 * job, which would be stale after a wait; the log upload follows the result),
 * so a turn covers the pair. Give it a client that does not retry 429s itself
 * (maxRateLimitedAttempts: 1), or they bypass the pacing.
 */
export function pacedClient(
  client: BackendClient,
  pacer: Pacer,
  followUps: ReadonlySet<string> = new Set()
): BackendClient {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver)
      if (typeof property !== 'string' || !PACED.has(property) || typeof value !== 'function')
        return value
      return async (...args: unknown[]) => {
        for (let attempt = 1; ; attempt++) {
          if (attempt > 1 || !followUps.has(property)) await pacer.turn()
          try {
            const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(
              target,
              args
            )
            pacer.answered()
            return result
          } catch (error) {
            if (!(error instanceof BackendError) || error.status !== 429) throw error
            pacer.refused(error.retryAfterMs)
            if (attempt >= MAX_PACED_ATTEMPTS) throw error
          }
        }
      }
    }
  })
}

/**
 * The rate limit a runner assumes, learned from its own answers. A deployment does not
 * say which build it runs: the 2026-05-02 build refills 5 requests a second for the whole
 * repository, the 2026-05-08 build 30. The action's spacings (polls, idle looks, start
 * stagger) are written for the tight limit; `scale` shrinks them to what the limit allows.
 * Successful answers carry no rate-limit headers, so only a 429 tells the limit: it states
 * the bucket's size (X-RateLimit-Limit). A runner starts on the pace the plan step's probe
 * found (a hint: backend/limit-probe.ts), else on the tight one, and moves to the ample one
 * once a 429 has stated a large bucket (300 on the 30/s build); a small one (20), or a 429
 * that states none, makes it tight. Why not start ample and fall back at the first 429: measured on
 * the 5/s build, a 40-runner matrix that did so drew 82-110 429s and a p95 from dependency
 * done to dependent start of 9-14 s, against none and 4.1 s on the tight pace, because
 * every runner has to meet its own first 429 (docs/benchmark.md).
 */
export const TIGHT_PER_SECOND = 5
export const AMPLE_PER_SECOND = 30
/** A bucket this small or smaller is a tight limit for good (the 5/s build's is 20; 30/s's 300). */
export const SMALL_BURST = 50

export class LearnedLimit {
  private seen: number
  private stated?: number

  /**
   * `refusals` reads how many answers of 429 this runner's client(s) received so far, and
   * `burst` the bucket size the latest of them stated.
   */
  constructor(
    private readonly refusals: () => number,
    private readonly burst: () => number | undefined = () => undefined,
    /** The bucket size the plan step's probe found (common/limit-hint.ts), until a 429 says. */
    hint?: LimitHint
  ) {
    this.seen = refusals()
    this.stated = hint?.burst
  }

  /** Requests a second the repository's bucket is assumed to refill, for every runner together. */
  perSecond(): number {
    const refusals = this.refusals()
    if (refusals > this.seen) {
      this.seen = refusals
      this.stated = this.burst()
    }
    return this.stated !== undefined && this.stated > SMALL_BURST
      ? AMPLE_PER_SECOND
      : TIGHT_PER_SECOND
  }

  /** The factor for a spacing written for the tight limit: 1 unless the bucket is known large. */
  scale(): number {
    return TIGHT_PER_SECOND / this.perSecond()
  }
}

/** The spacing for a runner that never learns: every delay as written for the tight limit. */
export const TIGHT_LIMIT: Pick<LearnedLimit, 'scale'> = { scale: () => 1 }

/** Adds one client's request counts to another's, so a summary shows both. */
export function addStats(into: ClientStats, from: ClientStats): void {
  into.requests += from.requests
  into.rateLimited += from.rateLimited
  into.retries += from.retries
  into.tokenRefreshes += from.tokenRefreshes
  for (const [route, count] of Object.entries(from.byRoute))
    into.byRoute[route] = (into.byRoute[route] ?? 0) + count
}
