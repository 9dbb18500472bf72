#!/usr/bin/env node
// Records what the stand-in orun prints for one `orun run` of a single-job plan, as the run action
// starts it (GitHub Actions mode, --all --isolation none --local), for orun 2.54 and 2.75, with and
// without colour, into __fixtures__/orun-run-output/<version>-<case>[-colour].txt (stdout, then
// stderr after a line `--- stderr`). run-evidence.test.ts reads them.
// Usage: node testing/orun-standin/record-run-outputs.mjs
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..', '..')
const out = path.join(root, '__fixtures__', 'orun-run-output')
const orun = path.join(here, 'orun')

const job = {
  id: 'api-edge.dev.deploy',
  name: 'deploy',
  component: 'api-edge',
  environment: 'dev',
  path: 'apps/api-edge',
  displayName: 'Deploy',
  checkName: 'api-edge · dev · Deploy',
  steps: [{ id: 'main', name: 'main', run: 'echo "api-edge dev done"' }]
}
const plan = (execution, jobPatch = {}) => ({
  apiVersion: 'orun.io/v1',
  kind: 'Plan',
  metadata: { name: 'ci', checksum: `sha256-${'ba97a4ad4356'.repeat(5)}abcd` },
  execution,
  jobs: [{ ...job, ...jobPatch }]
})

// name -> [plan, extra args]: each way a single-job run ends.
const cases = {
  // The job ran and succeeded.
  success: [plan({ concurrency: 1, failFast: true })],
  // The concurrent path skipped the job (a dependency not completed in orun's state): exit 0.
  skipped: [plan({ concurrency: 4, failFast: true }, { dependsOn: ['foundation.dev.plan-apply'] })],
  // A step failed with failFast off: exit 0.
  'failed-no-failfast': [
    plan({ concurrency: 1, failFast: false }, { steps: [{ id: 'main', run: 'echo boom; exit 3' }] })
  ],
  // A component.yaml scoped the job out (no --all): exit 0, silent.
  filtered: [plan({ concurrency: 1, failFast: true }), { noAll: true }]
}

fs.mkdirSync(out, { recursive: true })
for (const version of ['2.54.0', '2.75.0']) {
  for (const [name, [planJson, options = {}]] of Object.entries(cases)) {
    for (const colour of [false, true]) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orun-record-'))
      fs.mkdirSync(path.join(dir, 'apps', 'api-edge'), { recursive: true })
      fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(planJson))
      if (options.noAll) fs.writeFileSync(path.join(dir, 'component.yaml'), 'name: web\n')
      const args = ['run', 'plan.json', `--job=${job.id}`, '--exec-id=gha-1-1-ba97a4ad4356']
      if (!options.noAll) args.push('--all')
      args.push('--isolation', 'none', '--local')
      const env = { PATH: process.env.PATH, GITHUB_ACTIONS: 'true', ORUN_STANDIN_VERSION: version }
      if (colour) env.CLICOLOR_FORCE = '1'
      const result = spawnSync(orun, args, { cwd: dir, env, encoding: 'utf8' })
      const text = `${result.stdout}--- stderr\n${result.stderr}--- exit ${result.status}\n`
      const file = `orun${version.split('.').slice(0, 2).join('')}-${name}${colour ? '-colour' : ''}.txt`
      // Durations vary from run to run; the recorded files keep one value.
      fs.writeFileSync(path.join(out, file), text.replace(/\b\d+\.\ds\b/g, '0.4s'))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
