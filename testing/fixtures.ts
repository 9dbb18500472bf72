import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root (this file lives in testing/). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** CI and every checkout lay shared/ beside the clone: plan fixtures come from there. */
export const SHARED_PLANS = path.resolve(REPO_ROOT, '..', 'shared', 'fixtures', 'plans')

/** The text of a shared plan fixture, by file name without `.json`. */
export function sharedPlanText(name: string): string {
  return readFileSync(path.join(SHARED_PLANS, `${name}.json`), 'utf8')
}

/**
 * Makes the directory of each job's `path` under dir, as a checkout of the intent's repository
 * holds them: orun runs a job in its path and fails the step when it is missing.
 */
export function checkOutJobPaths(dir: string, planText: string): void {
  let jobs: unknown
  try {
    jobs = (JSON.parse(planText) as { jobs?: unknown }).jobs
  } catch {
    return // not a plan: nothing to check out
  }
  for (const job of Array.isArray(jobs) ? jobs : []) {
    const jobPath = (job as { path?: unknown } | null)?.path
    if (typeof jobPath === 'string' && jobPath && !path.isAbsolute(jobPath)) {
      mkdirSync(path.join(dir, jobPath), { recursive: true })
    }
  }
}

/** Writes the plan to dir/file in a checkout that holds its jobs' paths (checkOutJobPaths). */
export function writePlanCheckout(dir: string, planText: string, file = 'plan.json'): string {
  const target = path.join(dir, file)
  writeFileSync(target, planText)
  checkOutJobPaths(dir, planText)
  return target
}
