#!/usr/bin/env node
// The baseline: orun's own remote-state client algorithm (orun-cli.md, "the
// baseline to beat"), driven by the same harness as the action. Per runner:
// a fresh OIDC token for every request, create/join the run, claim with
// exponential backoff from 2 s doubling to 60 s (a 429 or error is just
// another failed poll), heartbeat every 30 s, the log uploaded once at the
// end, then the update. The job itself runs through the same stand-in orun.
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const env = process.env
const backend = env['INPUT_BACKEND-URL']
const runId = env['INPUT_RUN-ID']
const jobId = env.INPUT_JOB
const plan = JSON.parse(readFileSync(env['INPUT_PLAN-FILE'], 'utf8'))
const runnerId = `${env.RUNNER_NAME}-baseline-${process.pid}`
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function mint() {
  const response = await fetch(`${env.ACTIONS_ID_TOKEN_REQUEST_URL}&audience=orun`, {
    headers: { Authorization: `Bearer ${env.ACTIONS_ID_TOKEN_REQUEST_TOKEN}` }
  })
  return (await response.json()).value
}

// A network error counts as a failed attempt (status 0), like any other failed poll.
async function call(method, path, body, text = false) {
  try {
    return await send(method, path, body, text)
  } catch (error) {
    console.error(`${method} ${path}: ${error.message}`)
    return { status: 0, body: {} }
  }
}

/** Calls outside the claim loop are retried a few times, 1 s apart, until a 2xx. */
async function callUntilOk(method, path, body, text = false) {
  for (let attempt = 0; ; attempt++) {
    const result = await call(method, path, body, text)
    if ((result.status >= 200 && result.status < 300) || attempt >= 10) return result
    await sleep(1000)
  }
}

async function send(method, path, body, text) {
  const token = await mint()
  const response = await fetch(`${backend}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      'Content-Type': text ? 'text/plain' : 'application/json'
    },
    body: body === undefined ? undefined : text ? body : JSON.stringify(body)
  })
  return { status: response.status, body: await response.json().catch(() => ({})) }
}

const planId = plan.metadata.checksum.replace(/^sha256-/, '').slice(0, 12)
const backendPlan = {
  checksum: planId,
  version: 'sourceplane.io/v1',
  createdAt: new Date().toISOString(),
  jobs: plan.jobs.map(job => ({
    jobId: job.id,
    component: job.component,
    deps: job.dependsOn ?? [],
    steps: job.steps.map(step => ({
      stepId: step.id ?? step.name,
      uses: 'run',
      with: { raw: step.run }
    }))
  }))
}
const enc = encodeURIComponent
await callUntilOk('POST', '/v1/runs', {
  plan: backendPlan,
  runId,
  triggerType: 'ci',
  actor: 'octocat'
})

let backoff = 2000
const deadline = Date.now() + 30 * 60_000
for (;;) {
  const { status, body } = await call('POST', `/v1/runs/${enc(runId)}/jobs/${enc(jobId)}/claim`, {
    runnerId
  })
  if (status === 200 && body.claimed) break
  if (status === 200 && (body.currentStatus === 'success' || body.currentStatus === 'failed'))
    process.exit(body.currentStatus === 'success' ? 0 : 1)
  if (status === 200 && body.depsBlocked) {
    console.error('upstream dependencies are blocked or failed')
    process.exit(1)
  }
  if (Date.now() > deadline) process.exit(1)
  await sleep(backoff)
  backoff = Math.min(60_000, backoff * 2)
}

const job = plan.jobs.find(j => j.id === jobId)
const single = join(env.RUNNER_TEMP, 'job.json')
writeFileSync(single, JSON.stringify({ ...plan, jobs: [{ ...job, dependsOn: [] }] }))
let log = ''
const heartbeat = setInterval(
  () => call('POST', `/v1/runs/${enc(runId)}/jobs/${enc(jobId)}/heartbeat`, { runnerId }),
  30_000
)
const child = spawn(
  join(env.ORUN_STANDIN_DIR, 'orun'),
  ['run', single, '--job', jobId, '--exec-id', runId, '--local'],
  {
    cwd: env.GITHUB_WORKSPACE,
    env: { ...env, ORUN_REMOTE_STATE: 'false' }
  }
)
child.stdout.on('data', chunk => (log += chunk))
child.stderr.on('data', chunk => (log += chunk))
const exitCode = await new Promise(resolve => child.on('close', resolve))
clearInterval(heartbeat)
await callUntilOk('POST', `/v1/runs/${enc(runId)}/logs/${enc(jobId)}`, log, true)
await callUntilOk('POST', `/v1/runs/${enc(runId)}/jobs/${enc(jobId)}/update`, {
  runnerId,
  status: exitCode === 0 ? 'success' : 'failed',
  ...(exitCode === 0 ? {} : { error: `exit code ${exitCode}` })
})
process.exit(exitCode === 0 ? 0 : 1)
