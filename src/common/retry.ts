/** Sleeps are injectable so tests can run retry schedules without waiting. */
export type Sleep = (ms: number) => Promise<void>
export type Random = () => number

export const realSleep: Sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** "Full jitter" exponential backoff: uniform in [0, min(cap, base * 2^attempt)]. */
export function fullJitterDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: Random = Math.random
): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** attempt))
}

/** A delay spread by ±fraction around its value, so many runners do not fire in step. */
export function spread(ms: number, fraction: number, random: Random = Math.random): number {
  return Math.max(0, Math.round(ms * (1 - fraction + 2 * fraction * random())))
}

export interface RetryDecision {
  retry: boolean
  /** A delay the server asked for (Retry-After); jitter is added on top. */
  afterMs?: number
  /** Width of that jitter (default 1 s): callers widen it when many clients collide. */
  jitterMs?: number
}

export interface RetryOptions {
  /** Total attempts, including the first. */
  attempts: number
  baseMs: number
  capMs: number
  sleep?: Sleep
  random?: Random
  decide: (error: unknown, attempt: number) => RetryDecision
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void
}

/** Runs fn until it succeeds, decide() says stop, or attempts run out (then the last error is thrown). */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions
): Promise<T> {
  const sleep = options.sleep ?? realSleep
  const random = options.random ?? Math.random
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt)
    } catch (error) {
      const decision = options.decide(error, attempt)
      if (!decision.retry || attempt + 1 >= options.attempts) throw error
      const delay =
        decision.afterMs !== undefined
          ? decision.afterMs + Math.floor(random() * (decision.jitterMs ?? 1000))
          : fullJitterDelay(attempt, options.baseMs, options.capMs, random)
      options.onRetry?.(error, attempt, delay)
      await sleep(delay)
    }
  }
}
