// ESM jest: the @actions/* packages are ESM-only, so tests run as native ES
// modules (node --experimental-vm-modules) and ts-jest only strips types.
import { readFileSync, readdirSync } from 'node:fs'
import { availableParallelism } from 'node:os'

/**
 * The suites that start the bundles in dist/ as processes (a run of the action, the Harness,
 * a pool or re-run suite), and the stand-in orun's own suite (a process per case): they wait on
 * the local server's rate limit, timeouts and child processes far more than they compute. `npm run test:quick` leaves them out
 * (jest.quick.config.js).
 */
const STARTS_BUNDLES =
  /\b(runActionProcess|startActionProcess|runAttempt|poolSuite|rerunSuite)\(|new Harness\(|spawn\(ORUN,/
export const bundleSuites = readdirSync(new URL('__tests__', import.meta.url))
  .filter(name => name.endsWith('.test.ts'))
  .filter(name =>
    STARTS_BUNDLES.test(readFileSync(new URL(`__tests__/${name}`, import.meta.url), 'utf8'))
  )

/**
 * Jest's default is one worker per core but one (a single worker on 2 cores). Most of the time
 * of the bundle suites is waiting, so more workers than cores run them side by side; measured
 * in CONTRIBUTING.md (Tests). JEST_WORKERS overrides it.
 */
const workers = Number(process.env.JEST_WORKERS) || Math.max(4, availableParallelism() * 2)

export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  testMatch: ['**/__tests__/**/*.test.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }]
  },
  testTimeout: 60000,
  maxWorkers: workers,
  // Coverage (npm test passes --coverage) counts what the in-process tests run of src/; the
  // subprocess tests of the bundles in dist/ do not count. v8 coverage works with native ESM.
  // Left out: the one-line entries (index.ts: `await runAction(run)`, run by the bundles only) and
  // backend/types.ts (type declarations only: nothing in it runs).
  collectCoverageFrom: [
    'src/**/*.ts',
    '!src/**/index.ts',
    '!src/run/post-index.ts',
    '!src/backend/types.ts'
  ],
  coverageProvider: 'v8',
  coverageReporters: ['text-summary', 'json-summary', ['text', { skipFull: true }]],
  reporters: ['default', '<rootDir>/scripts/closing-line-reporter.cjs'],
  verbose: false
}
