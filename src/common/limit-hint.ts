import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AMPLE_PER_SECOND, SMALL_BURST, TIGHT_PER_SECOND } from '../run/pace.js'

/**
 * What the plan step's probe of the rate limit (backend/limit-probe.ts) hands to the runners:
 * a small file beside the plan, in the plan artifact or beside the plan step's 'plan-file'.
 */

/** The bucket size a runner may assume; `stated` when a 429 said it, else a lower bound. */
export interface LimitHint {
  burst: number
  stated: boolean
  /**
   * When the reads the probe spent are refilled (epoch ms; refillWaitMs): a runner that starts
   * sooner waits until then. On GitHub the matrix starts later anyway, so it costs nothing
   * there, where a wait in the plan step would lengthen every workflow run.
   */
  refilledAt?: number
}

/** The file's name, beside the plan's. */
export const LIMIT_HINT_FILE = 'backend-limit.json'

export function writeLimitHint(dir: string, hint: LimitHint): void {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, LIMIT_HINT_FILE), `${JSON.stringify(hint)}\n`)
}

/** The hint beside a downloaded plan; undefined when there is none or it cannot be read. */
export function readLimitHint(dir: string): LimitHint | undefined {
  let text: string
  try {
    text = readFileSync(join(dir, LIMIT_HINT_FILE), 'utf8')
  } catch {
    return undefined
  }
  try {
    const value = JSON.parse(text) as Partial<LimitHint>
    if (typeof value.burst === 'number' && value.burst > 0 && typeof value.stated === 'boolean')
      return {
        burst: value.burst,
        stated: value.stated,
        ...(typeof value.refilledAt === 'number' ? { refilledAt: value.refilledAt } : {})
      }
  } catch {
    // An unreadable hint is no hint: the runners learn from their own answers.
  }
  return undefined
}

/**
 * How long a runner starting now waits for the probe's reads to be refilled. A hint from
 * further ahead than the refill itself can take means the clocks disagree: no wait.
 */
export function waitForRefillMs(hint: LimitHint | undefined, now: number): number {
  if (!hint?.refilledAt) return 0
  const wait = hint.refilledAt - now
  return wait > 0 && wait <= MAX_REFILL_WAIT_MS ? wait : 0
}
/** The longest refill a probe can need: every read of it spent at 5/s (60 reads: 12 s). */
const MAX_REFILL_WAIT_MS = 12_000

/** One line for a runner's log: the pace it starts on. */
export function describeHint(hint: LimitHint | undefined): string {
  if (!hint)
    return `No rate-limit hint from the plan step: pacing for ${TIGHT_PER_SECOND}/s until a 429 states the bucket.`
  const pace = hint.burst > SMALL_BURST ? AMPLE_PER_SECOND : TIGHT_PER_SECOND
  return hint.stated
    ? `The plan step's probe was told a bucket of ${hint.burst}: pacing for ${pace}/s until a 429 says otherwise.`
    : `The plan step's probe had ${hint.burst} reads answered without a 429: pacing for ${pace}/s until a 429 says otherwise.`
}
