/**
 * What the pool suites (pool*.test.ts) share: a harness per test (closed after it), scratch
 * folders, plans written for the run action, K workers started at once, and the exactly-once
 * checks every pool test makes. The end-to-end tests are split over several files so jest runs
 * them side by side: each waits on the server's rate limit far more than it computes.
 */
import { afterAll, afterEach, expect } from '@jest/globals'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  checkExecutions,
  type Harness,
  type ProcessResult,
  type RunnerHandle
} from '../demo/harness.js'
import { parsePlan } from '../src/plan/model.js'
import { cleanupActionProcesses } from './action-process.js'
import { sharedPlanText } from './fixtures.js'
import type { GeneratedPlan } from './plan-generator.js'
import { Scratch } from './scratch.js'

/** wide-deep with each job sleeping `seconds`, under a checksum of its own. */
export function wideDeep(seconds: number): string {
  const plan = JSON.parse(sharedPlanText('wide-deep')) as {
    metadata: { checksum: string }
    jobs: Array<{ steps: Array<{ run: string }> }>
  }
  for (const job of plan.jobs)
    for (const step of job.steps) step.run = step.run.replace(/sleep \d+/, `sleep ${seconds}`)
  plan.metadata.checksum = `sha256-${createHash('sha256').update(JSON.stringify(plan.jobs)).digest('hex')}`
  return JSON.stringify(plan)
}

/** The worker's own words when it did not end as expected, for a failing assertion. */
export function explain(results: ProcessResult[]): void {
  for (const result of results)
    if (result.exitCode !== 0)
      process.stderr.write(`worker exit ${result.exitCode}:\n${result.stdout.slice(-3000)}\n`)
}

export const jobResults = (result: ProcessResult) =>
  JSON.parse(result.outputs['job-results'] ?? '{}') as Record<
    string,
    { status: string; duration: number }
  >

/** Every job id in exactly one worker's job-results, and that list is what ran. */
export function expectEachJobReportedOnce(results: ProcessResult[], jobIds: string[]): void {
  const reported = results.flatMap(result => Object.keys(jobResults(result)))
  expect([...reported].sort()).toEqual([...jobIds].sort())
}

/** The run every pool test wants: DAG order kept, every worker done cleanly, each job reported once. */
export function expectEachJobRanOnce(
  h: Harness,
  jobs: Array<{ id: string; dependsOn?: string[] }>,
  results: ProcessResult[]
): void {
  explain(results)
  expect(checkExecutions({ jobs }, h.executions())).toEqual([])
  for (const result of results) expect(result.exitCode).toBe(0)
  expectEachJobReportedOnce(
    results,
    jobs.map(job => job.id)
  )
}

export function job(component: string, dependsOn: string[], run: string) {
  return {
    id: `${component}.dev.build`,
    name: 'build',
    component,
    environment: 'dev',
    composition: 'generated',
    dependsOn,
    steps: [{ id: 'build', name: 'build', run }]
  }
}

export function ancestors(plan: GeneratedPlan, jobId: string): Set<string> {
  const byId = new Map(plan.jobs.map(j => [j.id, j]))
  const found = new Set<string>()
  const stack = [...(byId.get(jobId)?.dependsOn ?? [])]
  while (stack.length) {
    const id = stack.pop()!
    if (found.has(id)) continue
    found.add(id)
    stack.push(...(byId.get(id)?.dependsOn ?? []))
  }
  return found
}

export async function until<T>(probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** A suite's harness (one per test, closed after it), scratch folders, and the helpers that use them. */
export function poolSuite() {
  const scratch = new Scratch([])
  const s = { harness: undefined as Harness | undefined }
  afterEach(async () => {
    await s.harness?.close()
    s.harness = undefined
  })
  afterAll(() => {
    cleanupActionProcesses()
    scratch.cleanUp()
  })
  const tempDir = (prefix: string) => scratch.tempDir(prefix)

  /** Writes a plan; returns what the run action needs to run it without the plan action. */
  function planInputs(text: string) {
    const dir = tempDir('orun-pool-plan-')
    const file = join(dir, 'plan.json')
    writeFileSync(file, text)
    const plan = parsePlan(text, file)
    return {
      plan,
      jobs: plan.order.map(job => ({ id: job.id, dependsOn: job.dependsOn })),
      runId: `gha-4242-1-${plan.id}`,
      inputs: {
        'run-id': `gha-4242-1-${plan.id}`,
        'plan-id': plan.id,
        'plan-file': file,
        'heartbeat-interval': '1s',
        'log-upload-interval': '1s'
      }
    }
  }

  function startWorkers(
    h: Harness,
    inputs: Record<string, string>,
    indexes: number[]
  ): RunnerHandle[] {
    const workspace = tempDir('orun-pool-ws-')
    // pool-size as GitHub fills its default in: strategy.job-total, the matrix size.
    return indexes.map(index =>
      h.startRunner(`worker-${index}`, workspace, {
        'pool-size': String(indexes.length),
        ...inputs,
        worker: String(index)
      })
    )
  }

  return { s, tempDir, planInputs, startWorkers }
}
