// Starts the suites that wait (bundle-suites.cjs) before the ones that compute, so that with
// several workers the long waits overlap from the start instead of trailing at the end. Within
// each group, jest's own order: slowest first by the durations it recorded, else by file size
// (which says little of a bundle suite: a short file can wait for minutes).
const Sequencer = require('@jest/test-sequencer').default
const { startsProcesses } = require('./bundle-suites.cjs')

class WaitingFirstSequencer extends Sequencer {
  sort(tests) {
    const ordered = super.sort(tests)
    const waiting = ordered.filter(test => startsProcesses(test.path))
    return [...waiting, ...ordered.filter(test => !waiting.includes(test))]
  }
}
module.exports = WaitingFirstSequencer
