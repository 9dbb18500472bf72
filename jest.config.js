// ESM jest: the @actions/* packages are ESM-only, so tests run as native ES
// modules (node --experimental-vm-modules) and ts-jest only strips types.
import { availableParallelism } from 'node:os'
import bundleSuitesModule from './scripts/bundle-suites.cjs'

/** The suites that start processes and wait (scripts/bundle-suites.cjs); test:quick leaves them out. */
export const bundleSuites = bundleSuitesModule.bundleSuites()

/**
 * Jest's default is one worker per core but one (a single worker on 2 cores). Most of the time
 * of the bundle suites is waiting, so more workers than cores run them side by side: 5 on 2
 * cores (npm test 346 s, against 421 s with 4; measured in CONTRIBUTING.md, Tests). JEST_WORKERS
 * overrides it.
 */
const workers = Number(process.env.JEST_WORKERS) || Math.max(5, availableParallelism() * 2)

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
  testSequencer: '<rootDir>/scripts/test-sequencer.cjs',
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
