/**
 * Runs the whole workflow on this machine, the way GitHub would: a local
 * coordination server (with its OIDC token endpoint), the bundled plan action,
 * then one bundled run-action process per matrix entry, all at once, each in
 * its own workspace copy and RUNNER_TEMP like separate runners. Shared by the
 * demo, the end-to-end test and the benchmark.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join, resolve } from 'node:path'
import {
  startCoordinationServer,
  type CoordinationServer,
  type CoordinationServerOptions
} from '../testing/coordination-server.js'
import { startArtifactService, type ArtifactService } from '../testing/artifact-service.js'
import {
  REPO_ROOT as ROOT,
  STANDIN_DIR,
  inputEnvName,
  parseFileCommands
} from '../testing/action-process.js'
import { checkOutJobPaths } from '../testing/fixtures.js'

export { ROOT, STANDIN_DIR }
export const DEMO_SECRET = 'demo-secret-7f3a9c'

export interface ProcessResult {
  /** When the process ended (epoch ms). */
  endedAt: number
  exitCode: number | null
  signal: NodeJS.Signals | null
  stdout: string
  outputs: Record<string, string>
  state: Record<string, string>
  summary: string
}

export interface RunnerHandle {
  label: string
  child: ChildProcess
  startedAt: number
  /** Set by loseRunner: a lost runner runs no post step. */
  lost?: boolean
  /** Main step, then the post step (which GitHub runs even after a cancel). */
  done: Promise<{ main: ProcessResult; post: ProcessResult }>
  /** What the main step has printed so far (its live GitHub log). */
  output: () => string
}

export interface ExecutionRecord {
  job: string
  pid: number
  start: number
  end: number
  exitCode: number
  remoteState: boolean
  /** orun's working directory: inside the workspace of the runner that started it. */
  cwd?: string
}

/** Direct children of a process, from /proc (Linux). */
function childPids(parent: number): number[] {
  return readdirSync('/proc')
    .filter(name => /^\d+$/.test(name))
    .filter(name => {
      try {
        // Field 4 of /proc/PID/stat is the parent pid; the command name (field 2) may hold spaces.
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent
      } catch {
        return false
      }
    })
    .map(Number)
}

const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '')

export interface HarnessOptions {
  server?: CoordinationServerOptions
  /** Extra environment for every action process. */
  env?: Record<string, string>
  /** Echo every runner's output, prefixed with its label. */
  echo?: boolean
  /** Start no artifact service: steps run without ACTIONS_RUNTIME_TOKEN, as outside GitHub. */
  noArtifacts?: boolean
}

/** The workflow run every process of a harness belongs to (GITHUB_RUN_ID). */
export const HARNESS_WORKFLOW_RUN = '4242'

export class Harness {
  readonly dir = mkdtempSync(join(tmpdir(), 'orun-harness-'))
  readonly recordFile = join(this.dir, 'executions.jsonl')
  readonly runnerLabels = new Map<string, string>()
  server!: CoordinationServer
  /** GitHub's artifact service, where the plan hand-off and the results records live. */
  artifacts?: ArtifactService
  /** The workflow run's attempt (GITHUB_RUN_ATTEMPT) of the processes started from now on: raise it to re-run. */
  attempt = 1
  /** The workflow run (GITHUB_RUN_ID) of the processes started from now on: change it for another workflow run. */
  workflowRun = HARNESS_WORKFLOW_RUN
  private readonly children = new Set<ChildProcess>()
  private runnerCount = 0

  constructor(private readonly options: HarnessOptions = {}) {}

  async start(): Promise<this> {
    this.server = await startCoordinationServer(this.options.server)
    if (!this.options.noArtifacts) this.artifacts = await startArtifactService()
    writeFileSync(this.recordFile, '')
    return this
  }

  /** A fresh copy of a workspace (each runner has its own checkout). */
  workspace(source: string, name: string): string {
    const target = join(this.dir, 'workspaces', name)
    mkdirSync(target, { recursive: true })
    cpSync(source, target, { recursive: true })
    return target
  }

  baseEnv(workspace: string, runnerName: string): NodeJS.ProcessEnv {
    const runnerTemp = join(this.dir, 'runners', runnerName, 'temp')
    mkdirSync(runnerTemp, { recursive: true })
    return {
      PATH: [STANDIN_DIR, process.env.PATH].join(delimiter),
      HOME: process.env.HOME,
      LANG: process.env.LANG ?? 'C.UTF-8',
      GITHUB_ACTIONS: 'true',
      GITHUB_RUN_ID: this.workflowRun,
      GITHUB_RUN_ATTEMPT: String(this.attempt),
      GITHUB_ACTOR: 'octocat',
      GITHUB_WORKSPACE: workspace,
      RUNNER_TEMP: runnerTemp,
      RUNNER_NAME: runnerName,
      ...this.server.tokenEnv(),
      ...this.artifacts?.runtimeEnv(this.workflowRun, this.attempt, runnerName),
      ORUN_STANDIN_RECORD: this.recordFile,
      ORUN_STANDIN_DIR: STANDIN_DIR,
      DEMO_SECRET,
      ...this.options.env
    }
  }

  /** Starts `node <bundle>` as GitHub would: inputs as INPUT_* env, command files, no shell. */
  spawnStep(
    bundle: string,
    env: NodeJS.ProcessEnv,
    inputs: Record<string, string>,
    files: string,
    label: string
  ): { child: ChildProcess; done: Promise<ProcessResult>; output: () => string } {
    mkdirSync(files, { recursive: true })
    const commandFiles = {
      GITHUB_OUTPUT: join(files, 'output'),
      GITHUB_STATE: join(files, 'state'),
      GITHUB_STEP_SUMMARY: join(files, 'summary'),
      GITHUB_PATH: join(files, 'path'),
      GITHUB_ENV: join(files, 'env')
    }
    for (const file of Object.values(commandFiles)) writeFileSync(file, '')
    const inputEnv = Object.fromEntries(
      Object.entries(inputs).map(([name, value]) => [inputEnvName(name), value])
    )
    const child = spawn(process.execPath, [join(ROOT, bundle)], {
      cwd: env.GITHUB_WORKSPACE,
      env: { ...env, ...inputEnv, ...commandFiles },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.children.add(child)
    let stdout = ''
    const collect = (chunk: Buffer) => {
      const text = chunk.toString()
      stdout += text
      if (this.options.echo) {
        for (const line of text.split('\n').filter(Boolean))
          process.stdout.write(`[${label}] ${line}\n`)
      }
    }
    child.stdout!.on('data', collect)
    child.stderr!.on('data', collect)
    const done = new Promise<ProcessResult>((resolveDone, rejectDone) => {
      child.once('error', rejectDone)
      child.once('close', (exitCode, signal) => {
        this.children.delete(child)
        resolveDone({
          endedAt: Date.now(),
          exitCode,
          signal,
          stdout,
          outputs: parseFileCommands(read(commandFiles.GITHUB_OUTPUT)),
          state: parseFileCommands(read(commandFiles.GITHUB_STATE)),
          summary: read(commandFiles.GITHUB_STEP_SUMMARY)
        })
      })
    })
    return { child, done, output: () => stdout }
  }

  /** Runs the plan action (dist) in its own workspace copy of intentDir. */
  async plan(intentDir: string, inputs: Record<string, string> = {}): Promise<ProcessResult> {
    const workspace = this.workspace(intentDir, 'plan')
    const step = this.spawnStep(
      'dist/plan/index.js',
      this.baseEnv(workspace, 'plan'),
      { 'orun-path': join(STANDIN_DIR, 'orun'), upload: 'false', ...inputs },
      join(this.dir, 'runners', 'plan', 'files'),
      'plan'
    )
    return step.done
  }

  /** Starts one matrix runner: the run action's main step, then its post step. */
  startRunner(
    label: string,
    intentDir: string,
    inputs: Record<string, string>,
    /** Another runner program (the benchmark's baseline); it has no post step. */
    program = 'dist/run/index.js'
  ): RunnerHandle {
    const name = `${label}#${++this.runnerCount}`
    this.runnerLabels.set(name, label)
    const workspace = this.workspace(intentDir, name)
    const env = this.baseEnv(workspace, name)
    const allInputs = {
      'orun-path': join(STANDIN_DIR, 'orun'),
      'backend-url': this.server.url,
      ...inputs
    }
    // A given plan's jobs run in their paths: the checkout holds them.
    const planFile = inputs['plan-file']
    if (planFile) checkOutJobPaths(workspace, read(resolve(workspace, planFile)))
    const files = join(this.dir, 'runners', name, 'files')
    const main = this.spawnStep(program, env, allInputs, files, label)
    const handle: RunnerHandle = {
      label: name,
      child: main.child,
      startedAt: Date.now(),
      done: undefined!,
      output: main.output
    }
    handle.done = main.done.then(async mainResult => {
      if (handle.lost || program !== 'dist/run/index.js')
        return { main: mainResult, post: mainResult }
      const stateEnv = Object.fromEntries(
        Object.entries(mainResult.state).map(([key, value]) => [`STATE_${key}`, value])
      )
      const post = this.spawnStep(
        'dist/run-post/index.js',
        { ...env, ...stateEnv },
        allInputs,
        join(files, 'post'),
        `${label}:post`
      )
      return { main: mainResult, post: await post.done }
    })
    return handle
  }

  /**
   * Simulates a runner machine that vanishes: SIGKILL for the action and for
   * the orun job it started (its own process group), and no post step.
   */
  loseRunner(handle: RunnerHandle): void {
    handle.lost = true
    const pid = handle.child.pid!
    for (const child of childPids(pid)) {
      try {
        process.kill(-Number(child), 'SIGKILL')
      } catch {
        process.kill(Number(child), 'SIGKILL')
      }
    }
    handle.child.kill('SIGKILL')
  }

  /** Which runner label a backend runnerId belongs to (runner ids start with RUNNER_NAME). */
  labelOf(runnerId: string | null): string {
    if (!runnerId) return '-'
    for (const name of this.runnerLabels.keys()) if (runnerId.startsWith(`${name}-`)) return name
    return runnerId
  }

  executions(): ExecutionRecord[] {
    return read(this.recordFile)
      .split('\n')
      .filter(Boolean)
      .map(line => JSON.parse(line) as ExecutionRecord)
  }

  /**
   * Reads a job's stored log back from the server, as any reader of the run would. The
   * service can answer an older version for about a second after an upload, so a reader
   * that wants the final log reads again until it is the one stored (for at most 5 s).
   */
  async fetchLog(runId: string, jobId: string): Promise<string | undefined> {
    const token = await this.server.mintToken()
    const url = `${this.server.url}/v1/runs/${encodeURIComponent(runId)}/logs/${encodeURIComponent(jobId)}`
    const giveUpAt = Date.now() + 5_000
    for (;;) {
      const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` } })
      // This reader shares the repository's rate limit with the runners.
      const retryAfterMs =
        response.status === 429 ? 1000 * Number(response.headers.get('retry-after') ?? 1) : 0
      const text = response.ok ? await response.text() : undefined
      const settled = response.status !== 429 && text === this.server.storedLog(runId, jobId)
      if (settled || Date.now() > giveUpAt) return text
      await new Promise(resolve => setTimeout(resolve, retryAfterMs || 250))
    }
  }

  async close(keep = false): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL')
    await this.server?.close()
    await this.artifacts?.close()
    if (!keep) rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Checks that every job ran exactly once and never before its dependencies ended. */
export function checkExecutions(
  plan: { jobs: Array<{ id: string; dependsOn?: string[] }> },
  executions: ExecutionRecord[],
  expectRan: (jobId: string) => boolean = () => true
): string[] {
  const problems: string[] = []
  const byJob = new Map<string, ExecutionRecord[]>()
  for (const record of executions) byJob.set(record.job, [...(byJob.get(record.job) ?? []), record])
  for (const job of plan.jobs) {
    const runs = byJob.get(job.id) ?? []
    if (expectRan(job.id) && runs.length !== 1) problems.push(`${job.id} ran ${runs.length} times`)
    if (!expectRan(job.id) && runs.length) problems.push(`${job.id} ran but should not have`)
    for (const run of runs) {
      for (const dep of job.dependsOn ?? []) {
        const depRun = byJob.get(dep)?.find(r => r.exitCode === 0)
        if (!depRun || depRun.end > run.start)
          problems.push(`${job.id} started before ${dep} succeeded`)
      }
      if (run.remoteState) problems.push(`${job.id} ran with remote state on in the child`)
    }
  }
  return problems
}
