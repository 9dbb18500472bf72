import { readFileSync } from 'node:fs'
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
