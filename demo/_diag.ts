import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Harness } from './harness.js'
import { planRun, runAttempt, writeFlakyIntent, type IntentShape } from './rerun-scenario.js'
const WIDE: IntentShape = {
  name: 'rerun-wide',
  environments: ['dev', 'stage', 'prod', 'qa'],
  components: [
    { name: 'net' },
    { name: 'db', dependsOn: ['net'] },
    { name: 'api', dependsOn: ['db'] },
    { name: 'web', dependsOn: ['api'] },
    { name: 'docs' }
  ]
}
const dir = mkdtempSync(join(tmpdir(), 'diag-'))
const h = await new Harness().start()
const intent = writeFlakyIntent(join(dir, 'a1'), WIDE, [
  'db@dev',
  'db@stage',
  'docs@dev',
  'docs@stage'
])
const planned = await planRun(h, intent)
const b1 = h.server.requests.length
const first = await runAttempt(h, planned, intent, planned.jobs)
const show = (label: string, reqs: typeof h.server.requests) => {
  const rs = reqs.filter(r => r.route !== 'token' && r.route !== 'jwks')
  const t0 = rs[0]?.at ?? 0
  let streak = 0,
    longest = 0
  for (const r of rs) {
    streak = r.status === 429 ? streak + 1 : 0
    longest = Math.max(longest, streak)
  }
  console.log(
    `${label}: ${rs.length} requests, 429: ${rs.filter(r => r.status === 429).length}, longest streak ${longest}`
  )
  const bySec = new Map<number, string[]>()
  for (const r of rs) {
    const s = Math.floor((r.at - t0) / 1000)
    bySec.set(s, [...(bySec.get(s) ?? []), `${r.route}${r.status === 429 ? '!' : ''}`])
  }
  for (const [s, list] of bySec) console.log(`  ${s}s: ${list.join(' ')}`)
}
show('attempt 1', h.server.requests.slice(b1))
h.attempt = 2
const b2 = h.server.requests.length
const fixed = writeFlakyIntent(join(dir, 'a2'), WIDE)
const second = await runAttempt(h, planned, fixed, [
  ...first.failedLegs,
  'db@dev.smoke',
  'web@stage.smoke'
])
show('attempt 2', h.server.requests.slice(b2))
console.log(second.failedLegs)
await h.close()
