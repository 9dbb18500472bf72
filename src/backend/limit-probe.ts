import { BackendClient, BackendError } from './client.js'
import type { TokenSource } from './auth.js'
import type { LimitHint } from '../common/limit-hint.js'
import { AMPLE_PER_SECOND, SMALL_BURST, TIGHT_PER_SECOND } from '../run/pace.js'

/**
 * What the plan step learns of the repository's rate limit, once per workflow run, for the
 * runners. Successful answers carry no rate-limit headers, so a runner alone learns the limit
 * only from a 429: on the 30/s build none comes, and every runner would keep the spacings
 * written for 5/s. The plan step sends a short burst of reads instead:
 * - a 429 states the bucket's size (X-RateLimit-Limit: 20 on the 5/s build, 300 on 30/s);
 * - a burst answered without one proves the bucket holds more than the 5/s build's 20 plus
 *   what it refills meanwhile.
 * The runners read the result beside the plan (common/limit-hint.ts) and start on that pace;
 * their own 429s still overrule it (pace.ts LearnedLimit).
 *
 * Cost: at most PROBE_WAVES × PROBE_WAVE_SIZE reads. On the 5/s build it empties the bucket
 * (about 20 requests, then 429s, which cost no tokens), and a runner that starts within the
 * 4 s of refill waits for it (refilledAt); on the 30/s build 60 of its 300.
 */
export const PROBE_WAVES = 6
export const PROBE_WAVE_SIZE = 10
/** A burst that takes longer says little (the bucket refills meanwhile): no conclusion. */
export const PROBE_BUDGET_MS = 3_000

export interface ProbeResult {
  hint?: LimitHint
  requests: number
  refused: number
  /** Why there is no hint, when there is none. */
  inconclusive?: string
}

/**
 * Sends the probe's reads of `runId` (created just before) in waves, and stops at the first
 * 429. A client of its own that never retries: a retried 429 would hide the answer.
 */
export async function probeRateLimit(
  settings: { backendUrl: string; tokens: TokenSource; log?: (message: string) => void },
  runId: string,
  now: () => number = Date.now
): Promise<ProbeResult> {
  const client = new BackendClient({
    baseUrl: settings.backendUrl,
    tokens: settings.tokens,
    log: settings.log,
    maxAttempts: 1,
    maxRateLimitedAttempts: 1
  })
  const started = now()
  let answered = 0
  for (let wave = 0; wave < PROBE_WAVES; wave++) {
    if (now() - started > PROBE_BUDGET_MS)
      return {
        requests: client.stats.requests,
        refused: 0,
        inconclusive: `the backend took over ${PROBE_BUDGET_MS / 1000} s to answer ${answered} reads`
      }
    const answers = await Promise.allSettled(
      Array.from({ length: PROBE_WAVE_SIZE }, () => client.getRun(runId))
    )
    let refused = 0
    for (const answer of answers) {
      if (answer.status === 'fulfilled') answered++
      else if (answer.reason instanceof BackendError && answer.reason.status === 429) refused++
      // A run not visible yet right after its create answers 404: answered, and counted.
      else if (answer.reason instanceof BackendError && answer.reason.status === 404) answered++
      else
        return {
          requests: client.stats.requests,
          refused,
          inconclusive: `a read failed (${answer.reason instanceof BackendError ? answer.reason.describe() : String(answer.reason)})`
        }
    }
    if (refused) {
      const stated = client.stats.rateLimitBurst
      return {
        hint: stated ? { burst: stated, stated: true } : { burst: answered, stated: false },
        requests: client.stats.requests,
        refused
      }
    }
  }
  return { hint: { burst: answered, stated: false }, requests: client.stats.requests, refused: 0 }
}

/**
 * How long after the probe the bucket is as full as before it: the reads it spent, at the pace
 * the answers showed. On the 5/s build about 4 s; on an ample bucket nothing (60 of 300 leaves
 * plenty).
 */
export function refillWaitMs(result: ProbeResult): number {
  if (!result.hint || result.hint.burst > SMALL_BURST) return 0
  const spent = Math.min(result.requests - result.refused, result.hint.burst)
  return Math.ceil(spent / TIGHT_PER_SECOND) * 1000
}

/** One line for the plan step's log. */
export function describeProbe(result: ProbeResult): string {
  if (!result.hint)
    return `Rate limit not learned (${result.inconclusive}): the runners start on the ${TIGHT_PER_SECOND}/s pace and learn from their own answers.`
  const { burst, stated } = result.hint
  const pace = burst > SMALL_BURST ? AMPLE_PER_SECOND : TIGHT_PER_SECOND
  return stated
    ? `Rate limit: a 429 after ${result.requests - result.refused} of ${result.requests} reads stated a bucket of ${burst}; the runners start on the ${pace}/s pace.`
    : `Rate limit: ${burst} reads answered without a 429, more than the 5/s build's bucket holds; the runners start on the ${pace}/s pace and slow down at their first 429.`
}
