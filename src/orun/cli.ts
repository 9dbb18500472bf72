import * as exec from '@actions/exec'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { UserError } from '../common/errors.js'

/**
 * Every call to the orun binary lives here, so a change in orun's CLI is a
 * change in one file. See shared spec orun-cli.md.
 */

/** `orun --version` prints `orun version X.Y.Z`; returns X.Y.Z. */
export async function getOrunVersion(binary: string): Promise<string> {
  const result = await exec.getExecOutput(binary, ['--version'], {
    silent: true,
    ignoreReturnCode: true
  })
  const match = /orun version v?(\S+)/.exec(result.stdout)
  if (result.exitCode !== 0 || !match) {
    throw new UserError(
      `'${binary} --version' did not print 'orun version X.Y.Z' (exit ${result.exitCode}): ` +
        `${(result.stderr || result.stdout).trim() || 'no output'}. ` +
        'Check that orun-path points to an orun binary.'
    )
  }
  return match[1]
}

export interface CompileOptions {
  cwd: string
  output: string
  name?: string
  all: boolean
  environments: string[]
  components: string[]
  changed: boolean
  base?: string
  head?: string
  /** `--from-ci <provider> --event-file <file>`: scope the plan by the intent's trigger bindings. */
  fromCi?: { provider: string; eventFile: string }
  extraArgs: string[]
}

/** What `orun plan` did: wrote the plan, or found nothing to plan (its own line, quoted). */
export type CompileResult = { planned: true } | { planned: false; orunSays: string }

/**
 * `orun plan ... -o FILE`: compiles intent.yaml in cwd into a plan file. With `--from-ci`, an
 * event that matches no trigger binding makes orun print `○ … — nothing to plan` and exit 0
 * without writing FILE (orun cmd/orun/main.go): that is an empty plan, not an error.
 */
export async function compilePlan(binary: string, options: CompileOptions): Promise<CompileResult> {
  const args = ['plan', '--output', options.output]
  if (options.fromCi) {
    args.push('--from-ci', options.fromCi.provider, '--event-file', options.fromCi.eventFile)
  }
  if (options.name) args.push('--name', options.name)
  if (options.all) args.push('--all')
  if (options.environments.length) args.push('--env', options.environments.join(','))
  for (const component of options.components) args.push('--component', component)
  if (options.changed) {
    args.push('--changed')
    if (options.base) args.push('--base', options.base)
    if (options.head) args.push('--head', options.head)
  }
  args.push(...options.extraArgs)
  const result = await exec.getExecOutput(binary, args, {
    cwd: options.cwd,
    ignoreReturnCode: true
  })
  if (result.exitCode !== 0) {
    const reason = result.stderr.trim() || result.stdout.trim() || 'no output'
    throw new UserError(
      `orun plan failed (exit ${result.exitCode}) in ${options.cwd}: ${reason}. ` +
        'Fix intent.yaml, or the working-directory/environments/components/args inputs.'
    )
  }
  if (existsSync(options.output)) return { planned: true }
  const output = `${result.stderr}\n${result.stdout}`
  const nothingToPlan = output
    .split('\n')
    .map(line => line.trim())
    .find(line => /nothing to plan/i.test(line))
  if (nothingToPlan) return { planned: false, orunSays: nothingToPlan }
  // Exit 0 with no plan and no reason: not a state to guess an empty plan from.
  throw new UserError(
    `orun plan exited 0 in ${options.cwd} but wrote no plan file to ${options.output} and did not say why ` +
      "(its output is above). Check that 'args' does not override --output, and the orun version."
  )
}

/** The optional `orun run` flags the installed orun has, read from one `orun run --help`. */
export interface RunCapabilities {
  /** `--local` (v2.17.0+): force local filesystem state. */
  local: boolean
  /** `--isolation none`: run in the checked-out tree, not a per-job copy. */
  isolation: boolean
}

const capabilities = new Map<string, Promise<RunCapabilities>>()

/** A flag listed in help text; a look-alike such as `--local-only` does not count. */
function listsFlag(help: string, flag: string): boolean {
  return new RegExp(`(^|[\\s,])${flag}(?![\\w-])`, 'm').test(help)
}

/**
 * Probes `orun run --help` once per binary and process: older orun rejects
 * flags it does not know, so each optional flag is passed only when listed.
 */
export function probeRunCapabilities(binary: string): Promise<RunCapabilities> {
  let probe = capabilities.get(binary)
  if (!probe) {
    probe = exec
      .getExecOutput(binary, ['run', '--help'], { silent: true, ignoreReturnCode: true })
      .then(result => {
        const help = result.stdout + result.stderr
        return { local: listsFlag(help, '--local'), isolation: listsFlag(help, '--isolation') }
      })
    capabilities.set(binary, probe)
  }
  return probe
}

export interface JobRunOptions {
  /** A plan file holding just this job (see singleJobPlan). */
  planFile: string
  jobId: string
  execId: string
  cwd: string
  /** The child's whole environment (see run/child-env.ts). */
  env: NodeJS.ProcessEnv
  capabilities: RunCapabilities
  extraArgs: string[]
  onOutput: (chunk: string, stream: 'stdout' | 'stderr') => void
}

/**
 * `orun run <plan> --job=<id> --exec-id=<id> --all [--isolation none] [--local] [args]`:
 * - `--job=<id>`: one argument, so an id that starts with `-` is never read as a flag;
 * - `--all`: no scoping by a component.yaml at or above the working directory
 *   (a global flag in every orun release), which could filter the job out;
 * - `--isolation none`: the job runs in the checked-out tree, not in a copy
 *   under .orun/runs/ without node_modules or dist whose outputs are discarded;
 * - `--local`, and ORUN_REMOTE_STATE=false for orun without it: the action owns the claim,
 *   and orun's own remote mode would try to claim the job again and wait forever.
 */
export function runJobArgs(options: JobRunOptions): string[] {
  const args = ['run', options.planFile, `--job=${options.jobId}`, `--exec-id=${options.execId}`]
  args.push('--all')
  if (options.capabilities.isolation) args.push('--isolation', 'none')
  if (options.capabilities.local) args.push('--local')
  return [...args, ...options.extraArgs]
}

export interface JobProcess {
  readonly pid: number | undefined
  /** Resolves when orun exits: its exit code, or the signal that ended it. */
  readonly exited: Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }>
  /** SIGTERM the job's process group, then SIGKILL after graceMs if it is still there. */
  stop(graceMs: number): Promise<void>
}

/** Starts `orun run` (see runJobArgs); arguments go to orun as argv, never through a shell. */
export function startJob(binary: string, options: JobRunOptions): JobProcess {
  const args = runJobArgs(options)
  // Its own process group, so stop() reaches the steps orun started, not only orun.
  const child = spawn(binary, args, {
    cwd: options.cwd,
    env: { ...options.env, ORUN_REMOTE_STATE: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true
  })
  child.stdout.setEncoding('utf8').on('data', chunk => options.onOutput(chunk, 'stdout'))
  child.stderr.setEncoding('utf8').on('data', chunk => options.onOutput(chunk, 'stderr'))
  const exited = new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.once('error', error =>
        reject(
          new UserError(`Could not start orun (${binary}): ${error.message}. Check orun-path.`)
        )
      )
      child.once('close', (exitCode, signal) => resolve({ exitCode, signal }))
    }
  )
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal)
    } catch {
      // already gone
    }
  }
  return {
    pid: child.pid,
    exited,
    async stop(graceMs: number) {
      if (child.exitCode !== null || child.signalCode !== null) return
      signalGroup('SIGTERM')
      const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs)
      await exited.catch(() => undefined)
      clearTimeout(timer)
    }
  }
}
