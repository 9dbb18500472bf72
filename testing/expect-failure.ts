// Jest-only assertions on action processes; kept apart from action-process.ts, which the demo imports too.
import { expect } from '@jest/globals'
import type { ActionProcessResult } from './action-process.js'

/** The `::error::` annotations an action printed. */
export const errorLines = (result: ActionProcessResult): string[] =>
  result.stdout.split('\n').filter(line => line.startsWith('::error::'))

/**
 * The action failed cleanly, as a user mistake: exit 1, exactly one `::error::`
 * annotation, no stack trace and no "unexpected error". Returns the annotation text.
 */
export function expectCleanFailure(result: ActionProcessResult): string {
  expect(result.exitCode).toBe(1)
  const errors = errorLines(result)
  expect(errors).toHaveLength(1)
  const output = result.stdout + result.stderr
  expect(output).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m)
  expect(output).not.toMatch(/unexpected error/)
  return errors[0].slice('::error::'.length)
}
