/**
 * The plan step's probe of the repository's rate limit (src/backend/limit-probe.ts), against
 * the local server on each build: a 429 states the small bucket of 2026-05-02, a burst answered
 * without one proves the large bucket of 2026-05-08, and anything else concludes nothing.
 */
import { afterAll, describe, expect, it } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTokenSource } from '../src/backend/auth.js'
import { BackendClient } from '../src/backend/client.js'
import {
  PROBE_WAVES,
  PROBE_WAVE_SIZE,
  describeProbe,
  probeRateLimit,
  refillWaitMs
} from '../src/backend/limit-probe.js'
import {
  LIMIT_HINT_FILE,
  describeHint,
  readLimitHint,
  waitForRefillMs,
  writeLimitHint
} from '../src/common/limit-hint.js'
import { toBackendPlan } from '../src/backend/plan.js'
import { AMPLE_PER_SECOND, LearnedLimit, TIGHT_PER_SECOND } from '../src/run/pace.js'
import {
  BUILD_RATE_LIMITS,
  IMMEDIATE_CONSISTENCY,
  startCoordinationServer,
  type CoordinationServer
} from '../testing/coordination-server.js'
import { parsePlan } from '../src/plan/model.js'
import { sharedPlanText } from '../testing/fixtures.js'
import { Scratch } from '../testing/scratch.js'

const scratch = new Scratch(['ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN'])
afterAll(() => scratch.cleanUp())

const plan = parsePlan(sharedPlanText('single'), 'single.json')

/** A server of the given build with a created run; the probe's settings for it. */
async function serverWithRun(options: Parameters<typeof startCoordinationServer>[0]): Promise<{
  server: CoordinationServer
  runId: string
  settings: Parameters<typeof probeRateLimit>[0]
}> {
  const server = await startCoordinationServer({ ...IMMEDIATE_CONSISTENCY, ...options })
  Object.assign(process.env, server.tokenEnv())
  const tokens = createTokenSource({ log: () => {} })
  const runId = `probe-${randomBytes(4).toString('hex')}`
  await new BackendClient({ baseUrl: server.url, tokens }).createRun({
    plan: toBackendPlan(plan.file, plan.id),
    runId
  })
  return { server, runId, settings: { backendUrl: server.url, tokens } }
}

describe("the plan step's probe of the rate limit", () => {
  it('on the 2026-05-02 build (burst 20, 5/s): a 429 states the bucket, and the runners pace for 5/s', async () => {
    const { server, runId, settings } = await serverWithRun({ build: '2026-05-02' })
    try {
      const result = await probeRateLimit(settings, runId)
      expect(result.hint).toEqual({ burst: BUILD_RATE_LIMITS['2026-05-02'].burst, stated: true })
      // It stops at the wave that met the first 429: at most one wave past the bucket (the
      // create took one token, a whole-second refill may add 5).
      expect(result.requests).toBeLessThanOrEqual(20 + 5 + PROBE_WAVE_SIZE)
      expect(result.refused).toBeGreaterThan(0)
      expect(new LearnedLimit(() => 0, undefined, result.hint).perSecond()).toBe(TIGHT_PER_SECOND)
      expect(describeProbe(result)).toMatch(
        /stated a bucket of 20; the runners start on the 5\/s pace/
      )
      // The plan step then waits until the bucket's 20 are refilled at 5 a second.
      expect(refillWaitMs(result)).toBe(4_000)
    } finally {
      await server.close()
    }
  })

  it('on the 2026-05-08 build (burst 300, 30/s): every read answered, no 429, and the runners pace for 30/s', async () => {
    const { server, runId, settings } = await serverWithRun({ build: '2026-05-08' })
    try {
      const before = server.requests.length
      const result = await probeRateLimit(settings, runId)
      expect(result).toEqual({
        hint: { burst: PROBE_WAVES * PROBE_WAVE_SIZE, stated: false },
        requests: PROBE_WAVES * PROBE_WAVE_SIZE,
        refused: 0
      })
      const sent = server.requests.slice(before)
      expect(sent.filter(r => r.route === 'getRun')).toHaveLength(PROBE_WAVES * PROBE_WAVE_SIZE)
      expect(sent.filter(r => r.status === 429)).toHaveLength(0)
      expect(new LearnedLimit(() => 0, undefined, result.hint).perSecond()).toBe(AMPLE_PER_SECOND)
      expect(describeProbe(result)).toMatch(/the runners start on the 30\/s pace/)
      expect(refillWaitMs(result)).toBe(0)
    } finally {
      await server.close()
    }
  })

  it('on the 2026-05-08 build with the bucket spent by other runs: their 429 states 300', async () => {
    const { server, runId, settings } = await serverWithRun({
      rateLimit: { burst: 300, perSecond: 30 }
    })
    try {
      server.inject('getRun', { kind: 'rateLimit', count: 1 })
      const result = await probeRateLimit(settings, runId)
      // The injected 429 states the server's bucket, as the real one does.
      expect(result.hint).toEqual({ burst: 300, stated: true })
      expect(new LearnedLimit(() => 0, undefined, result.hint).perSecond()).toBe(AMPLE_PER_SECOND)
    } finally {
      await server.close()
    }
  })

  it('concludes nothing from a failed read or a slow backend: the runners learn by themselves', async () => {
    const { server, runId, settings } = await serverWithRun({ build: '2026-05-08' })
    try {
      server.inject('getRun', { kind: 'status', status: 503, count: 1 })
      const failed = await probeRateLimit(settings, runId)
      expect(failed.hint).toBeUndefined()
      expect(failed.inconclusive).toMatch(/a read failed \(.*503/)
      expect(describeProbe(failed)).toMatch(/^Rate limit not learned .*start on the 5\/s pace/)

      // A clock that moves a second per look: three waves fit the 3 s budget, the fourth does not.
      let clock = 0
      const slow = await probeRateLimit(settings, runId, () => (clock += 1_000))
      expect(slow.hint).toBeUndefined()
      expect(slow.requests).toBe(3 * PROBE_WAVE_SIZE)
      expect(slow.inconclusive).toMatch(/took over 3 s/)
    } finally {
      await server.close()
    }
  })
})

describe('a runner that starts while the probe is being refilled', () => {
  it('waits for the rest of the refill, and never for a hint from a clock far ahead', () => {
    const now = 1_000_000
    expect(describeHint(undefined)).toMatch(/^No rate-limit hint .*pacing for 5\/s/)
    expect(describeHint({ burst: 60, stated: false })).toMatch(
      /had 60 reads answered without a 429: pacing for 30\/s/
    )
    expect(describeHint({ burst: 20, stated: true })).toMatch(
      /told a bucket of 20: pacing for 5\/s/
    )
    expect(waitForRefillMs(undefined, now)).toBe(0)
    expect(waitForRefillMs({ burst: 300, stated: true }, now)).toBe(0)
    expect(waitForRefillMs({ burst: 20, stated: true, refilledAt: now + 2_500 }, now)).toBe(2_500)
    // Refilled already (on GitHub the matrix starts seconds after the plan job): no wait.
    expect(waitForRefillMs({ burst: 20, stated: true, refilledAt: now - 1 }, now)).toBe(0)
    // More than the whole probe could take to refill: the two machines' clocks disagree.
    expect(waitForRefillMs({ burst: 20, stated: true, refilledAt: now + 60_000 }, now)).toBe(0)
  })
})

describe('the hint beside the plan', () => {
  const dir = mkdtempSync(join(tmpdir(), 'orun-limit-hint-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('reads back what the plan step wrote; a missing or garbled file is no hint', () => {
    expect(readLimitHint(dir)).toBeUndefined()
    writeLimitHint(dir, { burst: 60, stated: false })
    expect(readLimitHint(dir)).toEqual({ burst: 60, stated: false })
    writeLimitHint(dir, { burst: 20, stated: true, refilledAt: 1234 })
    expect(readLimitHint(dir)).toEqual({ burst: 20, stated: true, refilledAt: 1234 })
    for (const garbled of [
      '{',
      '{"burst":"many","stated":true}',
      '{"burst":-1,"stated":true}',
      'null'
    ]) {
      writeFileSync(join(dir, LIMIT_HINT_FILE), garbled)
      expect(readLimitHint(dir)).toBeUndefined()
    }
  })
})

describe('the runner reads the hint with its plan', () => {
  it('beside the plan file it was given, and none where there is none', async () => {
    const { loadHandoff } = await import('../src/run/plan-source.js')
    const dir = mkdtempSync(join(tmpdir(), 'orun-limit-handoff-'))
    try {
      const planFile = join(dir, 'plan.json')
      writeFileSync(planFile, sharedPlanText('single'))
      const inputs = { planFile, runId: 'handoff-run' }
      expect((await loadHandoff(inputs)).limitHint).toBeUndefined()
      writeLimitHint(dir, { burst: 300, stated: true })
      const { plan: loaded, limitHint } = await loadHandoff(inputs)
      expect(loaded.id).toBe(plan.id)
      expect(limitHint).toEqual({ burst: 300, stated: true })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
