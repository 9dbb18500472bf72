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
  /** Total attempts, including the first; default unlimited (then budgetMs bounds the call). */
  attempts?: number
  /**
   * Time-based bound: no retry starts once this much time was spent (requests and pauses),
   * and no pause runs past it. Outages last minutes, not a number of attempts.
   */
  budgetMs?: number
  baseMs: number
  capMs: number
  sleep?: Sleep
  random?: Random
  now?: () => number
  /** Ends the pause between attempts at once; the error thrown is onAbort()'s. */
  signal?: AbortSignal
  onAbort?: () => unknown
  decide: (error: unknown, attempt: number) => RetryDecision
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void
  /** Called with the error about to be thrown because attempts or the budget ran out. */
  onGiveUp?: (error: unknown, spent: { attempts: number; elapsedMs: number }) => void
}

/**
 * Runs fn until it succeeds, decide() says stop, or attempts or the time budget run out
 * (then the last error is thrown).
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions
): Promise<T> {
  const sleep = options.sleep ?? realSleep
  const random = options.random ?? Math.random
  const now = options.now ?? Date.now
  const attempts = options.attempts ?? Infinity
  const budget = options.budgetMs ?? Infinity
  const started = now()
  // An injected sleep may not pass time: count the pauses too, so a budget always ends.
  let slept = 0
  const elapsed = () => Math.max(now() - started, slept)
  const aborted = () => {
    throw options.onAbort ? options.onAbort() : new Error('aborted')
  }
  for (let attempt = 0; ; attempt++) {
    if (options.signal?.aborted) aborted()
    try {
      return await fn(attempt)
    } catch (error) {
      const decision = options.decide(error, attempt)
      if (!decision.retry) throw error
      const remaining = budget - elapsed()
      if (attempt + 1 >= attempts || remaining <= 0) {
        options.onGiveUp?.(error, { attempts: attempt + 1, elapsedMs: elapsed() })
        throw error
      }
      const delay = Math.min(
        remaining,
        decision.afterMs !== undefined
          ? decision.afterMs + Math.floor(random() * (decision.jitterMs ?? 1000))
          : fullJitterDelay(attempt, options.baseMs, options.capMs, random)
      )
      options.onRetry?.(error, attempt, delay)
      if (options.signal) {
        const waited = options.sleep
          ? await sleepUnlessAborted(options.sleep, delay, options.signal)
          : await timerUnlessAborted(delay, options.signal)
        if (!waited) aborted()
      } else {
        await sleep(delay)
      }
      slept += delay
    }
  }
}

/** Sleeps; resolves false as soon as the signal aborts (the sleep itself is left to end). */
export function sleepUnlessAborted(
  sleep: Sleep,
  ms: number,
  signal: AbortSignal
): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false)
  return new Promise(resolve => {
    const onAbort = () => resolve(false)
    signal.addEventListener('abort', onAbort, { once: true })
    void sleep(ms).then(() => {
      signal.removeEventListener('abort', onAbort)
      resolve(true)
    })
  })
}

/** A real sleep whose timer is cleared on abort, so it keeps no process alive. */
export function timerUnlessAborted(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false)
  return new Promise(resolve => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve(true)
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      resolve(false)
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * A factor for every time budget and timeout of the action, from
 * ORUN_ACTION_BUDGET_SCALE (tests only: it lets a fault suite run minutes-long budgets
 * in seconds; see docs/reliability.md). Unset, or not a positive number: 1.
 */
export function budgetScale(env: NodeJS.ProcessEnv = process.env): number {
  const scale = Number(env.ORUN_ACTION_BUDGET_SCALE)
  return Number.isFinite(scale) && scale > 0 && scale <= 1 ? scale : 1
}

/**
 * A shipped budget, scaled for tests (see budgetScale). floorMs keeps timeouts of
 * single requests realistic on a busy test machine whatever the scale.
 */
export function scaledBudget(ms: number, floorMs = 1): number {
  return Math.max(Math.min(ms, floorMs), Math.round(ms * budgetScale()))
}
