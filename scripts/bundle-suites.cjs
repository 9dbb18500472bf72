// The jest suites that start the bundles in dist/ as processes (a run of the action, the Harness,
// a pool or re-run suite), and the stand-in orun's own suite (a process per case): they wait on
// the local server's rate limit, timeouts and child processes far more than they compute.
// jest.config.js leaves them out of `npm run test:quick`; test-sequencer.cjs starts them first.
const { readFileSync, readdirSync } = require('node:fs')
const path = require('node:path')

const STARTS_PROCESSES =
  /\b(runActionProcess|startActionProcess|runAttempt|poolSuite|rerunSuite)\(|new Harness\(|spawn\(ORUN,/

const testsDir = path.join(__dirname, '..', '__tests__')

/** Several runners at once (the Harness, a pool or re-run suite) or a fault proxy's timeouts. */
const RUNS_SCENARIOS = /\b(poolSuite|rerunSuite|runAttempt|startFaultProxy)\(|new Harness\(/

/** Whether the suite at this path starts the bundles (or the stand-in) as processes. */
function startsProcesses(file) {
  return STARTS_PROCESSES.test(readFileSync(file, 'utf8'))
}

/**
 * How long a suite is likely to wait, for the order on a clean clone (no recorded durations):
 * 2 for end-to-end scenarios, 1 for other suites that start processes, 0 for in-process ones.
 */
function waitTier(file) {
  const text = readFileSync(file, 'utf8')
  return RUNS_SCENARIOS.test(text) ? 2 : STARTS_PROCESSES.test(text) ? 1 : 0
}

/** File names (in __tests__/) of those suites. */
function bundleSuites() {
  return readdirSync(testsDir)
    .filter(name => name.endsWith('.test.ts'))
    .filter(name => startsProcesses(path.join(testsDir, name)))
}

module.exports = { bundleSuites, startsProcesses, waitTier }
