/**
 * Pool mode: the bundled plan action's `workers` output, and K bundled run
 * action processes with `worker: N` against the local coordination server
 * (real rate limit unless a test says otherwise), with the stand-in orun.
 * Plus the pure parts of the pool: how many workers `auto` picks, the order a
 * worker tries jobs in, when an idle worker leaves, and request pacing.
 */
import { describe, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Harness, checkExecutions } from '../demo/harness.js'
import type { JobRecord } from '../src/backend/types.js'
import { parsePlan, remainingPath } from '../src/plan/model.js'
import {
  chooseWorkers,
  levelsOf,
  parseWorkersInput,
  unitSchedule,
  workerIndexes
} from '../src/plan/workers.js'
import { Pacer } from '../src/run/pace.js'
import {
  START_STAGGER_MS,
  dealt,
  leaveReason,
  ownedBy,
  poolView,
  ranking,
  startStaggerMs
} from '../src/run/pool.js'
import { STANDIN_DIR, runActionProcess } from '../testing/action-process.js'
import { expectCleanFailure } from '../testing/expect-failure.js'
import { sharedPlanText } from '../testing/fixtures.js'
import { generatePlan, generatedJobId } from '../testing/plan-generator.js'
import { BACKEND_BUILDS, type BackendBuild } from '../testing/coordination-server.js'
import {
  ancestors,
  expectEachJobRanOnce,
  explain,
  expectEachJobReportedOnce,
  job,
  jobResults,
  poolSuite,
  until
} from '../testing/pool-checks.js'

const { s, tempDir, planInputs, startWorkers } = poolSuite()

describe('plan action: workers output', () => {
  it('picks auto workers from the plan shape and says why; a number is used as given', async () => {
    const ws = tempDir('orun-pool-plan-ws-')
    writeFileSync(join(ws, 'plan.json'), sharedPlanText('wide-deep'))
    const run = (workers: string) =>
      runActionProcess('dist/plan/index.js', {
        inputs: { 'plan-file': 'plan.json', upload: 'false', workers },
        cwd: ws
      })
    const auto = await run('auto')
    expect(auto.exitCode).toBe(0)
    // ceil(40 / 6) = 7 workers would leave one of the 8 roots for a second step: 8 (see 'auto workers').
    expect(JSON.parse(auto.outputs.workers)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    expect(auto.summary).toContain('**8** worker(s)')
    expect(auto.summary).toContain('40 job(s) over 6 dependency level(s)')
    expect(auto.summary).toContain('ceil(40 / 6) = 7 would need 7 steps')

    const three = await run('3')
    expect(JSON.parse(three.outputs.workers)).toEqual([1, 2, 3])

    const wrong = await run('0')
    expect(expectCleanFailure(wrong)).toContain(
      "Input 'workers' must be auto or a whole number from 1 to 256"
    )
  }, 60_000)
})

describe('run action: worker input checks', () => {
  it('refuses worker together with job, and a worker or pool size that is not a whole number', async () => {
    const ws = tempDir('orun-pool-input-ws-')
    writeFileSync(join(ws, 'plan.json'), sharedPlanText('single'))
    const run = (inputs: Record<string, string>) =>
      runActionProcess('dist/run/index.js', {
        inputs: {
          'run-id': 'gha-1-1-abc',
          'plan-file': 'plan.json',
          'orun-path': STANDIN_DIR,
          'backend-url': 'http://127.0.0.1:9',
          ...inputs
        },
        cwd: ws
      })
    expect(expectCleanFailure(await run({ worker: '1', job: 'x' }))).toContain(
      "Set either 'job' (one matrix job per runner) or 'worker'"
    )
    expect(expectCleanFailure(await run({ worker: 'two' }))).toContain(
      "Input 'worker' must be a whole number from 1, got 'two'"
    )
    expect(expectCleanFailure(await run({ worker: '1', 'pool-size': '0' }))).toContain(
      "Input 'pool-size' must be a whole number from 1, got '0'"
    )
  }, 60_000)
})

describe('pool mode end to end', () => {
  it.each(BACKEND_BUILDS)(
    'a failing job blocks only its dependents; its worker goes on and fails only at the end (backend build %s)',
    async (build: BackendBuild) => {
      const harness = (s.harness = await new Harness({ server: { build } }).start())
      const failing = generatedJobId(0)
      const { plan } = generatePlan({
        jobs: 24,
        depth: 3,
        minSeconds: 0.2,
        maxSeconds: 0.5,
        failing: [failing]
      })
      const { jobs, runId, inputs } = planInputs(JSON.stringify(plan))
      const parsed = parsePlan(JSON.stringify(plan), 'plan.json')
      const blocked = new Set(
        jobs.filter(job => [...ancestors(plan, job.id)].includes(failing)).map(job => job.id)
      )
      expect(blocked.size).toBeGreaterThan(0)
      expect(blocked.size).toBeLessThan(jobs.length - 1)
      // A runner that left pool-size empty: the workers do not know the pool's size.
      const workers = startWorkers(harness, { ...inputs, 'pool-size': '' }, [1, 2])
      const results = (await Promise.all(workers.map(w => w.done))).map(r => r.main)

      // Every job that does not depend on the failure ran once; none of its dependents ran.
      expect(
        checkExecutions(
          { jobs },
          harness.executions(),
          id => !blocked.has(id) && id !== failing
        ).filter(problem => !problem.startsWith(`${failing} ran`))
      ).toEqual([])
      expect(harness.executions().filter(e => e.job === failing)).toHaveLength(1)
      const stored = new Map(harness.server.jobsOf(runId).map(job => [job.jobId, job.status]))
      expect(stored.get(failing)).toBe('failed')
      for (const job of parsed.order) {
        if (job.id === failing) continue
        expect(stored.get(job.id)).toBe(blocked.has(job.id) ? 'pending' : 'success')
      }
      const owner = results.find(result => failing in jobResults(result))!
      const other = results.find(result => result !== owner)!
      expect(owner.exitCode).toBe(1)
      expect(owner.outputs.status).toBe('failed')
      expect(owner.stdout).toMatch(/::error::svc-0000\.dev\.build: failed: /)
      // It kept taking independent jobs after the failure, and reported them too.
      expect(Object.keys(jobResults(owner)).length).toBeGreaterThan(1)
      expect(other.exitCode).toBe(0)
      expectEachJobReportedOnce(
        results,
        jobs.filter(job => !blocked.has(job.id)).map(job => job.id)
      )
    },
    240_000
  )

  it('workers that cannot be useful leave at once; the run completes when a worker is lost', async () => {
    const harness = (s.harness = await new Harness().start())
    // Two chains of four jobs: two workers at a time can be useful (and each watches the other).
    // The chains' first jobs wait at a gate until two workers have left: otherwise, on a busy
    // machine, a late worker could start after a first job ended, take the next one from the
    // worker reporting it, and every worker would have run a job before any could leave idle.
    const gate = join(tempDir('orun-pool-gate-'), 'open')
    const chain = {
      apiVersion: 'orun.io/v1',
      kind: 'Plan',
      metadata: { name: 'chain', checksum: 'sha256-c4a20000000000000000000000000000000' },
      jobs: ['a', 'b'].flatMap(line =>
        [0, 1, 2, 3].map(index => ({
          id: `${line}${index}.dev.build`,
          name: 'build',
          component: `${line}${index}`,
          environment: 'dev',
          composition: 'generated',
          dependsOn: index ? [`${line}${index - 1}.dev.build`] : [],
          steps: [
            {
              id: 'build',
              name: 'build',
              run: `${index ? '' : `while [ ! -e '${gate}' ]; do sleep 0.1; done; `}echo "${line} ${index}" && sleep 2`
            }
          ]
        }))
      )
    }
    const { jobs, runId, inputs } = planInputs(JSON.stringify(chain))
    // Worker 1 is lost before it does anything: the lower index must not be relied on.
    const [lost, ...rest] = startWorkers(harness, inputs, [1, 2, 3, 4, 5])
    harness.loseRunner(lost)
    let left = 0
    for (const worker of rest) void worker.done.then(() => left++)
    // Two of the four live workers hold the first jobs; the other two must leave on their own.
    await until(() => (left >= 2 ? true : undefined), 120_000)
    writeFileSync(gate, '')
    const results = (await Promise.all(rest.map(w => w.done))).map(r => r.main)

    expectEachJobRanOnce(harness, jobs, results)
    const stored = harness.server.jobsOf(runId)
    expect(stored.every(job => job.status === 'success')).toBe(true)
    // The workers without a job left long before the chain ended, saying why.
    const idle = results.filter(result => !Object.keys(jobResults(result)).length)
    expect(idle).toHaveLength(2)
    const chainEnd = Math.max(...stored.map(job => Date.parse(job.finishedAt!)))
    for (const result of idle) {
      expect(result.summary).toMatch(/then left: enough workers/)
      expect(chainEnd - result.endedAt).toBeGreaterThan(3_000)
    }
    for (const result of results) expect(result.endedAt - chainEnd).toBeLessThan(15_000)
  }, 240_000)

  it.each(['2026-05-02', '2026-05-08'] as const)(
    'a worker lost mid-job: another stays, takes the job over when it goes stale, and the pool finishes (%s build)',
    async build => {
      // The takeover window scaled to the 1 s heartbeat (3 intervals); the newer build's sweep
      // scaled alike (300 s → 30 s) so the staying worker's claim usually comes first.
      const harness = (s.harness = await new Harness({
        server: { build, heartbeatTimeoutMs: 3_000, sweepPeriodMs: 30_000, rateLimit: false }
      }).start())
      const chain = {
        apiVersion: 'orun.io/v1',
        kind: 'Plan',
        metadata: {
          name: 'lost',
          checksum: `sha256-1057${build.replace(/-/g, '')}00000000000000000000`
        },
        jobs: [0, 1].map(index => ({
          id: `part${index}.dev.build`,
          name: 'build',
          component: `part${index}`,
          environment: 'dev',
          composition: 'generated',
          dependsOn: index ? ['part0.dev.build'] : [],
          steps: [
            { id: 'build', name: 'build', run: index ? 'echo second' : 'echo first && sleep 4' }
          ]
        }))
      }
      const { runId, inputs } = planInputs(JSON.stringify(chain))
      const workers = startWorkers(harness, inputs, [1, 2])
      const h = harness
      const owner = await until(
        () =>
          h.server
            .jobsOf(runId)
            .find(job => job.jobId === 'part0.dev.build' && job.status === 'running')?.runnerId ??
          undefined
      )
      const lost = workers.find(w => h.labelOf(owner) === w.label)!
      h.loseRunner(lost)
      const survivor = workers.find(w => w !== lost)!
      const { main } = await survivor.done
      const stored = Object.fromEntries(h.server.jobsOf(runId).map(job => [job.jobId, job]))
      // The pool finished: nothing is left running or waiting.
      expect(Object.values(stored).map(job => job.status)).not.toContain('running')
      if (stored['part0.dev.build'].status === 'success') {
        // Taken over from the lost worker, then its dependent ran.
        explain([main])
        expect(main.exitCode).toBe(0)
        expect(jobResults(main)['part0.dev.build']).toMatchObject({ status: 'success' })
        expect(main.stdout).toContain('took the job over')
        expect(stored['part1.dev.build'].status).toBe('success')
      } else {
        // Only the newer build fails it instead, when its sweep came before the claim.
        expect(build).toBe('2026-05-08')
        expect(stored['part0.dev.build'].lastError).toBe('runner heartbeat timeout')
        expect(stored['part1.dev.build'].status).toBe('pending')
      }
    },
    120_000
  )

  it('a cancelled worker reports its job in hand as cancelled and takes no other', async () => {
    const harness = (s.harness = await new Harness().start())
    const plan = {
      apiVersion: 'orun.io/v1',
      kind: 'Plan',
      metadata: { name: 'cancel', checksum: 'sha256-ca9ce1000000000000000000000000000000' },
      jobs: [
        job('slow', [], 'echo "slow start" && sleep 60 && echo "slow done"'),
        job('after', ['slow.dev.build'], 'echo after'),
        job('quick', [], 'sleep 3 && echo quick'),
        job('later', ['quick.dev.build'], 'sleep 1 && echo later')
      ]
    }
    const { runId, inputs } = planInputs(JSON.stringify(plan))
    const workers = startWorkers(harness, inputs, [1, 2])
    const slowOwner = await until(() => {
      const slow = harness!.server.jobsOf(runId).find(j => j.jobId === 'slow.dev.build')
      return slow?.status === 'running' && slow.runnerId ? slow.runnerId : undefined
    })
    // Mid-job: its orun has had time to start (orun prints a step's output when the step ends).
    await new Promise(resolve => setTimeout(resolve, 3_000))
    const victim = workers.find(w => slowOwner.startsWith(`${w.label}-`))!
    victim.child.kill('SIGTERM')
    const [a, b] = await Promise.all(workers.map(w => w.done))
    const cancelled = victim === workers[0] ? a : b
    const survivor = victim === workers[0] ? b : a

    const stored = new Map(harness.server.jobsOf(runId).map(j => [j.jobId, j]))
    expect(stored.get('slow.dev.build')!.status).toBe('failed')
    expect(stored.get('slow.dev.build')!.lastError).toMatch(/cancelled/)
    expect(stored.get('after.dev.build')!.status).toBe('pending')
    expect(stored.get('quick.dev.build')!.status).toBe('success')
    expect(stored.get('later.dev.build')!.status).toBe('success')
    expect(cancelled.main.exitCode).toBe(1)
    expect(Object.keys(jobResults(cancelled.main))).toEqual(['slow.dev.build'])
    expect(survivor.main.exitCode).toBe(0)
    expect(Object.keys(jobResults(survivor.main)).sort()).toEqual([
      'later.dev.build',
      'quick.dev.build'
    ])
    // The main step reported the job itself: nothing was left for the post step.
    expect(cancelled.post.stdout).not.toContain('never reported')
  }, 240_000)
})

/** A plan of jobs by id, each with the ids it depends on (ids are opaque; only dependsOn counts). */
function planOf(dependsOn: Record<string, string[]>) {
  const jobs = Object.entries(dependsOn).map(([id, deps]) => ({ id, dependsOn: deps }))
  const checksum = createHash('sha256').update(JSON.stringify(jobs)).digest('hex')
  return parsePlan(JSON.stringify({ metadata: { checksum: `sha256-${checksum}` }, jobs }), 'p.json')
}

/** `width` roots (r0, r1, ...) that one job, `join`, depends on: 2 levels, the first `width` wide. */
const fanIn = (width: number) => {
  const roots = Array.from({ length: width }, (_, i) => `r${i}`)
  return planOf({ ...Object.fromEntries(roots.map(id => [id, []])), join: roots })
}

/**
 * `copies` side-by-side copies of wide-deep's shape (40 jobs over 4 environments, 6 levels): per
 * environment two roots, four jobs on both, and four apps on those four and on the same app of
 * the environment before. Plain ids: the choice reads dependsOn, never the ids.
 */
function wideDeepShape(copies: number) {
  const deps: Record<string, string[]> = {}
  const mids = ['db', 'cache', 'queue', 'storage']
  for (let c = 0; c < copies; c++)
    for (let e = 0; e < 4; e++) {
      const at = (job: string, env = e) => `${job}-${c}-${env}`
      deps[at('net')] = []
      deps[at('iam')] = []
      for (const mid of mids) deps[at(mid)] = [at('net'), at('iam')]
      for (const app of ['api', 'worker', 'web', 'admin'])
        deps[at(app)] = [...mids.map(mid => at(mid)), ...(e ? [at(app, e - 1)] : [])]
    }
  return planOf(deps)
}

describe('auto workers', () => {
  it('starts from jobs over levels and adds workers until equal-length jobs keep the critical path', () => {
    const wide = parsePlan(sharedPlanText('wide-deep'), 'wide-deep.json')
    // 7 workers (ceil(40 / 6)) leave one of the 8 roots for step 2 and end a step late; 8 do not.
    const steps = unitSchedule(wide)
    expect([steps(7), steps(8), steps(16)]).toEqual([7, 6, 6])
    const auto = chooseWorkers(wide, 'auto')
    expect(auto.count).toBe(8)
    expect(auto.reason).toContain('40 job(s) over 6 dependency level(s), the widest 16 job(s)')
    expect(auto.reason).toContain(
      '8 keep the critical path of 6 level(s), while ceil(40 / 6) = 7 would need 7 steps, in a simulated schedule of equally long jobs (the plan has no durations)'
    )
    // The same shape without its job ids: the choice reads dependsOn, never the ids.
    expect(chooseWorkers(wideDeepShape(1), 'auto').count).toBe(8)
    expect(chooseWorkers(wide, 12)).toEqual({ count: 12, reason: "set by the 'workers' input" })
    expect(chooseWorkers(wide, 100).count).toBe(40)
  })

  it('keeps ceil(jobs / levels) when that already keeps the critical path', () => {
    const chain = planOf({ a: [], b: ['a'], c: ['b'], d: ['c'], e: ['d'] })
    expect(chooseWorkers(chain, 'auto')).toEqual({
      count: 1,
      reason:
        'auto: 5 job(s) over 5 dependency level(s), the widest 1 job(s): ceil(5 / 5) = 1 worker(s) keep the critical path of 5 level(s) ' +
        'in a simulated schedule of equally long jobs (the plan has no durations); more would mostly wait, billed, and poll the shared rate limit'
    })
    const single = parsePlan(sharedPlanText('single'), 'single.json')
    expect(chooseWorkers(single, 'auto').count).toBe(1)
    // 8 levels of exactly 125 jobs: 125 workers run a level a step.
    const even = generatePlan({ jobs: 1000, depth: 8, minSeconds: 1, maxSeconds: 2 }).plan
    const evenPlan = parsePlan(JSON.stringify(even), 'even.json')
    expect(unitSchedule(evenPlan)(125)).toBe(8)
    expect(chooseWorkers(evenPlan, 'auto').count).toBe(125)
  })

  it('goes no higher than the widest level, the job count and 256', () => {
    // 5 jobs over 2 levels: ceil(5 / 2) = 3 leave a root for step 2 and the join for step 3.
    const four = fanIn(4)
    expect(unitSchedule(four)(3)).toBe(3)
    expect(chooseWorkers(four, 'auto')).toMatchObject({ count: 4 })
    // 300 roots and a join: 300 workers would keep 2 steps, but a matrix holds 256.
    const wide = chooseWorkers(fanIn(300), 'auto')
    expect(wide.count).toBe(256)
    expect(wide.reason).toContain(
      "ceil(301 / 2) = 151 would need 3 steps and 256, GitHub's largest matrix, still 3"
    )
    const flat = generatePlan({ jobs: 600, depth: 1, minSeconds: 1, maxSeconds: 2 }).plan
    expect(chooseWorkers(parsePlan(JSON.stringify(flat), 'flat.json'), 'auto').count).toBe(256)
  })

  it('picks the fewest workers that keep the critical path on a 1,000-job plan', () => {
    const plan = wideDeepShape(25)
    const { levels, widest } = levelsOf(plan)
    expect([plan.order.length, levels, widest]).toEqual([1000, 6, 400])
    const { count, reason } = chooseWorkers(plan, 'auto')
    expect(count).toBeGreaterThan(Math.ceil(1000 / levels))
    expect(count).toBeLessThanOrEqual(widest)
    const steps = unitSchedule(plan)
    expect(steps(count)).toBe(levels)
    expect(steps(count - 1)).toBeGreaterThan(levels)
    expect(reason).toContain(`${count} keep the critical path of 6 level(s)`)
  })

  it('reads the workers input', () => {
    expect(workerIndexes(3)).toEqual([1, 2, 3])
    expect(parseWorkersInput('')).toBe('auto')
    expect(parseWorkersInput(' 32 ')).toBe(32)
    expect(() => parseWorkersInput('257')).toThrow(/from 1 to 256/)
    expect(() => parseWorkersInput('1.5')).toThrow(/whole number/)
  })
})

describe('the order a worker tries jobs in', () => {
  const wide = parsePlan(sharedPlanText('wide-deep'), 'wide-deep.json')
  it('puts the longest remaining path first', () => {
    const remaining = remainingPath(wide)
    expect(remaining.get('net@dev.smoke')).toBe(6)
    expect(remaining.get('net@prod.smoke')).toBe(3)
    expect(remaining.get('api@prod.smoke')).toBe(1)
    expect(
      ranking(wide)(['net@prod.smoke', 'api@prod.smoke', 'net@qa.smoke', 'net@dev.smoke'])
    ).toEqual(['net@dev.smoke', 'net@qa.smoke', 'net@prod.smoke', 'api@prod.smoke'])
  })
  it('deals equally good jobs out by worker index, better groups first', () => {
    const remaining = new Map([
      ['a', 3],
      ['b', 3],
      ['c', 3],
      ['d', 1]
    ])
    expect(dealt(['a', 'b', 'c', 'd'], 1, remaining)).toEqual(['a', 'b', 'c', 'd'])
    expect(dealt(['a', 'b', 'c', 'd'], 2, remaining)).toEqual(['b', 'c', 'a', 'd'])
    expect(dealt(['a', 'b', 'c', 'd'], 6, remaining)).toEqual(['c', 'a', 'b', 'd'])
  })
  it("puts this worker's own jobs first within equally good ones, never above a better group", () => {
    const remaining = new Map([
      ['a', 3],
      ['b', 3],
      ['c', 3],
      ['d', 1],
      ['e', 1]
    ])
    const own = (id: string) => id === 'c' || id === 'e'
    expect(dealt(['a', 'b', 'c', 'd', 'e'], 1, remaining, own)).toEqual(['c', 'a', 'b', 'e', 'd'])
    expect(dealt(['a', 'b', 'c', 'd', 'e'], 2, remaining, own)).toEqual(['c', 'b', 'a', 'e', 'd'])
  })
  it('deals the slice in plan order round-robin over the pool, each job to one owner', () => {
    const all = new Set(wide.order.map(job => job.id))
    const shares = [1, 2, 3].map(worker =>
      wide.order.filter(job => ownedBy(wide, all, worker, 3)!(job.id))
    )
    expect(shares.map(share => share.length)).toEqual([14, 13, 13])
    expect(new Set(shares.flat().map(job => job.id)).size).toBe(wide.order.length)
    expect(shares[1][0].id).toBe(wide.order[1].id)
    // An index above the pool size wraps around; a pool of one, or of unknown size, owns nothing.
    expect(wide.order.filter(job => ownedBy(wide, all, 4, 3)!(job.id))).toEqual(shares[0])
    expect(ownedBy(wide, all, 1, 1)).toBeUndefined()
    expect(ownedBy(wide, all, 1, undefined)).toBeUndefined()
    // Over a slice, only the slice's jobs are dealt.
    const slice = new Set(wide.order.filter(job => job.id.includes('@prod.')).map(job => job.id))
    const owned = wide.order.filter(job => ownedBy(wide, slice, 2, 2)!(job.id))
    expect(owned.length).toBe(Math.floor(slice.size / 2))
    expect(owned.every(job => slice.has(job.id))).toBe(true)
  })
})

describe('when an idle worker leaves', () => {
  const wide = parsePlan(sharedPlanText('wide-deep'), 'wide-deep.json')
  const all = new Set(wide.order.map(job => job.id))
  const now = Date.parse('2026-11-26T12:00:00Z')
  const record = (jobId: string, status: JobRecord['status'], runnerId?: string): JobRecord => ({
    jobId,
    component: '',
    status,
    deps: [],
    runnerId: runnerId ?? null,
    startedAt: runnerId ? new Date(now - 5_000).toISOString() : null,
    finishedAt: null,
    lastError: null,
    heartbeatAt: runnerId ? new Date(now - 5_000).toISOString() : null
  })
  /** wide-deep with the given statuses; every other job pending. */
  const view = (statuses: Record<string, [JobRecord['status'], string?]>) =>
    poolView(
      wide,
      all,
      wide.order.map(job => record(job.id, ...(statuses[job.id] ?? ['pending']))),
      'me',
      now,
      90_000
    )
  const done = (ids: string[]) =>
    Object.fromEntries(ids.map(id => [id, ['success'] as [JobRecord['status']]]))
  const exceptLast = wide.order.slice(0, -4).map(job => job.id)

  it('stays while the remaining work is wider than the busy workers', () => {
    const roots = wide.order.filter(job => !job.dependsOn?.length).map(job => job.id)
    const v = view(
      Object.fromEntries(
        roots.map((id, i) => [id, ['running', `r${i}`] as [JobRecord['status'], string]])
      )
    )
    expect(v.runnable).toEqual([])
    expect(v.busyOthers).toBe(8)
    expect(v.width).toBe(16)
    expect(leaveReason(v, 9)).toBeUndefined()
  })
  it('leaves when the busy workers cover the widest level of what remains', () => {
    const stageTop = ['api', 'worker', 'web', 'admin'].map(c => `${c}@stage.smoke`)
    const v = view({
      ...done(exceptLast.filter(id => !stageTop.includes(id))),
      ...Object.fromEntries(
        stageTop.map((id, i) => [id, ['running', `r${i}`] as [JobRecord['status'], string]])
      )
    })
    expect(v.runnable).toEqual([])
    expect(v.pendingLive).toBe(4)
    expect(v.width).toBe(4)
    expect(v.busyOthers).toBe(4)
    expect(leaveReason(v, 1)).toMatch(/^enough workers: the 4 job\(s\) left need at most 4/)
  })
  it('leaves when nothing can become runnable: all done or blocked by a failure', () => {
    expect(leaveReason(view(done(wide.order.map(job => job.id))), 1)).toMatch(/nothing left/)
    const failedRoot = view({ 'net@dev.smoke': ['failed'], 'iam@dev.smoke': ['success'] })
    // The failed root blocks its 20 descendants (dev, and the api-like jobs of every later
    // environment); the other 18 pending jobs can still run.
    expect(failedRoot.pendingLive).toBe(18)
  })
  it('never leaves a job whose owner stopped heartbeating without a taker', () => {
    const v = poolView(
      wide,
      all,
      wide.order.map(job =>
        job.id === 'api@prod.smoke'
          ? {
              ...record(job.id, 'running', 'gone'),
              heartbeatAt: new Date(now - 200_000).toISOString()
            }
          : record(job.id, 'success')
      ),
      'me',
      now,
      90_000
    )
    expect(v.stale).toEqual(['api@prod.smoke'])
    expect(leaveReason(v, 1)).toBeUndefined()
  })
  it('thins an idle crowd by index, but only while two other workers are busy', () => {
    const prodTop = ['api', 'worker', 'web', 'admin'].map(c => `${c}@prod.smoke`)
    const one = view({
      ...done(exceptLast.filter(id => id !== 'db@prod.smoke' && !prodTop.includes(id))),
      'db@prod.smoke': ['running', 'r1']
    })
    // 4 pending + 1 running left; the widest level (4) is more than the busy workers.
    expect(one.runnable).toEqual([])
    expect(one.width).toBe(4)
    // One busy worker may be lost: nobody leaves on its account.
    expect(leaveReason(one, 6)).toBeUndefined()
    const two = {
      ...one,
      running: [...one.running, { ...one.running[0], jobId: 'other@prod.smoke', runnerId: 'r2' }],
      busyOthers: 2
    }
    expect(leaveReason(two, 6)).toBeUndefined()
    expect(leaveReason(two, 7)).toMatch(/workers 1 to 6 are there for them/)
    const nobodyBusy = { ...one, running: [], busyOthers: 0 }
    expect(leaveReason(nobodyBusy, 7)).toBeUndefined()
  })
  it('stays while the one other busy worker may be lost, until its job ends or goes stale', () => {
    // The last job runs on another worker, its heartbeat seconds old: that worker may be gone.
    const v = view({
      ...done(wide.order.slice(0, -1).map(job => job.id)),
      [wide.order[wide.order.length - 1].id]: ['running', 'r1']
    })
    expect(v.pendingLive).toBe(0)
    expect(v.busyOthers).toBe(1)
    expect(leaveReason(v, 1)).toBeUndefined()
    expect(leaveReason(v, 99)).toBeUndefined()
    // A chain waiting on one busy worker: the same.
    const chainLike = { ...v, pendingLive: 3, width: 1 }
    expect(leaveReason(chainLike, 5)).toBeUndefined()
    // Two busy others: if one is lost, the other is left to watch.
    const two = {
      ...v,
      running: [...v.running, { ...v.running[0], jobId: 'x@dev.smoke', runnerId: 'r2' }],
      busyOthers: 2
    }
    expect(leaveReason(two, 1)).toMatch(/nothing left to take: the 2 job\(s\) still running/)
  })
})

describe('the start stagger', () => {
  it('wraps by pool-size, so a large worker index never sleeps for long', () => {
    expect(startStaggerMs(1, 8)).toBe(0)
    expect(startStaggerMs(8, 8)).toBe(7 * START_STAGGER_MS)
    expect(startStaggerMs(9, 8)).toBe(0)
    expect(startStaggerMs(100_000, 8)).toBe(((100_000 - 1) % 8) * START_STAGGER_MS)
    // Unknown size: the matrix limit (256 entries) bounds it.
    expect(startStaggerMs(100_000, undefined)).toBeLessThan(256 * START_STAGGER_MS)
  })
})

describe('request pacing', () => {
  it('widens the gap by half after a 429 and waits out Retry-After; narrows it by a step after an answer', async () => {
    let clock = 0
    const waits: number[] = []
    const pacer = new Pacer({
      now: () => clock,
      sleep: async ms => {
        waits.push(ms)
        clock += ms
      }
    })
    await pacer.turn()
    await pacer.turn()
    expect(waits).toEqual([])
    expect(pacer.lastRefusedAt).toBeUndefined()
    clock = 5_000
    pacer.refused(1_000)
    expect(pacer.gapMs).toBe(300)
    expect(pacer.lastRefusedAt).toBe(5_000)
    // No slot before the server's Retry-After.
    await pacer.turn()
    expect(waits).toEqual([1_000])
    pacer.refused(1_000)
    expect(pacer.gapMs).toBe(450)
    pacer.answered()
    expect(pacer.gapMs).toBe(350)
    for (let i = 0; i < 20; i++) pacer.refused(1_000)
    expect(pacer.gapMs).toBe(15_000)
    expect(pacer.refusals).toBe(22)
    waits.length = 0
    await pacer.turn()
    await pacer.turn()
    expect(waits).toEqual([15_000, 15_000])
  })
})
