/**
 * The live service's rate limit: one token bucket per namespace; refill =
 * floor(elapsed / 1 s) * perSecond since the last refill, capped at burst.
 */
import { ApiError } from './api-error.js'

export type RateLimit = { burst: number; perSecond: number } | false

interface Bucket {
  tokens: number
  lastRefill: number
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()

  constructor(
    private limit: RateLimit,
    private readonly clock: () => number = Date.now
  ) {}

  /** A new limit starts every namespace with a full bucket. */
  setLimit(limit: RateLimit): void {
    this.limit = limit
    this.buckets.clear()
  }

  /** The 429 the live service answers (also used by the `rateLimit` fault). */
  error(): ApiError {
    const limit = this.limit ? this.limit.burst : 20
    return new ApiError(429, 'RATE_LIMITED', 'Rate limit exceeded', {
      'Retry-After': '1',
      'X-RateLimit-Limit': String(limit),
      'X-RateLimit-Remaining': '0'
    })
  }

  /**
   * How long until every namespace's bucket is full again (refills come at whole seconds after
   * the last one): a test starts a new crowd on a full bucket, as a user's later re-run does.
   */
  msUntilFull(): number {
    if (!this.limit) return 0
    const now = this.clock()
    let longest = 0
    for (const bucket of this.buckets.values()) {
      const missing = this.limit.burst - bucket.tokens
      if (missing <= 0) continue
      const refills = Math.ceil(missing / this.limit.perSecond)
      longest = Math.max(longest, bucket.lastRefill + refills * 1000 - now)
    }
    return longest
  }

  /** Takes one token of the namespace's bucket, or throws the 429. */
  consume(namespaceId: string): void {
    if (!this.limit) return
    const now = this.clock()
    let bucket = this.buckets.get(namespaceId)
    if (!bucket) {
      bucket = { tokens: this.limit.burst, lastRefill: now }
      this.buckets.set(namespaceId, bucket)
    }
    const refill = Math.floor((now - bucket.lastRefill) / 1000) * this.limit.perSecond
    if (refill > 0) {
      bucket.tokens = Math.min(this.limit.burst, bucket.tokens + refill)
      bucket.lastRefill = now
    }
    if (bucket.tokens <= 0) throw this.error()
    bucket.tokens -= 1
  }
}
