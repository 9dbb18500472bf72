// npm run test:quick: the in-process suites only (every suite that does not start the
// bundles in dist/ as processes; see bundleSuites in jest.config.js), for a loop of seconds.
import base, { bundleSuites } from './jest.config.js'

export default {
  ...base,
  testPathIgnorePatterns: ['/node_modules/', ...bundleSuites.map(name => `/__tests__/${name}$`)]
}
