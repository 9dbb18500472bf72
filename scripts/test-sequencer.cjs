// Starts the suites that wait (bundle-suites.cjs: end-to-end scenarios, then other suites that
// start processes) before the ones that compute, so that with several workers the long waits
// overlap from the start instead of trailing at the end. Within each tier, jest's own order:
// slowest first by the durations it recorded, else by file size (which says little of a bundle
// suite: a short file can wait for minutes).
const Sequencer = require('@jest/test-sequencer').default
const { waitTier } = require('./bundle-suites.cjs')

class WaitingFirstSequencer extends Sequencer {
  sort(tests) {
    const ordered = super.sort(tests)
    const tiers = new Map(ordered.map(test => [test, waitTier(test.path)]))
    // Array.prototype.sort is stable: jest's order stays within a tier.
    return [...ordered].sort((a, b) => tiers.get(b) - tiers.get(a))
  }
}
module.exports = WaitingFirstSequencer
