// ESM jest: the @actions/* packages are ESM-only, so tests run as native ES
// modules (node --experimental-vm-modules) and ts-jest only strips types.
export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  testMatch: ['**/__tests__/**/*.test.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }]
  },
  testTimeout: 60000,
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
