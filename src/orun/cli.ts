import * as exec from '@actions/exec'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { UserError } from '../common/errors.js'
import { JobProcessTracker, signalProcesses, type ProcessIds } from '../common/process-tree.js'

/**
 * Every call to the orun binary lives here, so a change in orun's CLI is a
 * change in one file. See shared spec orun-cli.md.
 */

// orun colours its output when CLICOLOR_FORCE is set.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g

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
  const output = `${result.stderr}\n${result.stdout}`.replace(ANSI, '')
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

/** What orun said about an intent: `orun validate`, or a compile for an orun without it. */
export interface IntentCheck {
  /** orun accepted the intent (exit 0). */
  valid: boolean
  /** How it was checked: `orun validate`, or `orun plan` to a throw-away file. */
  via: 'validate' | 'plan'
  /** orun's output, stderr then stdout: on failure its errors, for annotations. */
  output: string
  exitCode: number
}

/** Does this orun have `orun validate`? Its root help lists its commands. */
export async function hasValidateCommand(binary: string): Promise<boolean> {
  const help = await exec.getExecOutput(binary, ['--help'], {
    silent: true,
    ignoreReturnCode: true
  })
  return /^\s+validate\s/m.test(help.stdout + help.stderr)
}

/**
 * Checks intent.yaml in cwd with orun's own validator, `orun validate` (cmd/orun/command_validate.go),
 * or, where the installed orun lacks it, `orun plan --all` compiled to scratchFile, which is then
 * thrown away: the same loader and normalisation, and no plan output for anyone to use.
 */
export async function checkIntent(
  binary: string,
  options: { cwd: string; scratchFile: string }
): Promise<IntentCheck> {
  const via = (await hasValidateCommand(binary)) ? 'validate' : 'plan'
  const args =
    via === 'validate' ? ['validate'] : ['plan', '--all', '--output', options.scratchFile]
  const result = await exec.getExecOutput(binary, args, {
    cwd: options.cwd,
    ignoreReturnCode: true
  })
  return {
    valid: result.exitCode === 0,
    via,
    output: `${result.stderr}\n${result.stdout}`,
    exitCode: result.exitCode
  }
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
  /** orun's pid; orun leads its own session and process group (same id). */
  readonly pid: number | undefined
  /**
   * Resolves when orun has exited and its output is read (or, when processes it left
   * behind hold the pipes, a moment later: those are killed and the pipes left unread).
   */
  readonly exited: Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }>
  /**
   * SIGTERM orun's process group (orun passes it on to its step), then, after graceMs,
   * SIGKILL every process of the job: its session, descendants and their groups.
   */
  stop(graceMs: number): Promise<void>
  /** Processes orun left behind that were killed when it exited. */
  readonly leftovers: number
  /** Called with the sessions and process groups the job runs in, each time they change. */
  onProcessIds(listener: (ids: ProcessIds) => void): void
}

/** After orun exits, how long its output may still take to drain from the pipes. */
const PIPE_DRAIN_MS = 2_000
/** How often the job's process tree is looked at while it runs (see JobProcessTracker). */
const TRACK_INTERVAL_MS = 1_000

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
  let orunExited = false
  let leftovers = 0
  const tracker = child.pid ? new JobProcessTracker(child.pid) : undefined
  const listeners: Array<(ids: ProcessIds) => void> = []
  const track = () => {
    if (tracker?.refresh()) for (const listener of listeners) listener(tracker.ids)
  }
  const tracking = setInterval(track, TRACK_INTERVAL_MS)
  tracking.unref()
  const killJob = () => (tracker ? signalProcesses(tracker.processes(), 'SIGKILL') : 0)
  const exited = new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.once('error', error => {
        clearInterval(tracking)
        reject(
          new UserError(`Could not start orun (${binary}): ${error.message}. Check orun-path.`)
        )
      })
      child.once('exit', (exitCode, signal) => {
        orunExited = true
        clearInterval(tracking)
        const pending: { drain?: NodeJS.Timeout; finished?: boolean } = {}
        const finish = () => {
          if (pending.finished) return
          pending.finished = true
          clearTimeout(pending.drain)
          // Whatever orun started and left running is ended with it, and its pipes are no longer read.
          leftovers = killJob()
          child.stdout.destroy()
          child.stderr.destroy()
          resolve({ exitCode, signal })
        }
        if (child.stdout.readableEnded && child.stderr.readableEnded) return finish()
        child.once('close', finish)
        pending.drain = setTimeout(finish, PIPE_DRAIN_MS)
      })
    }
  )
  return {
    pid: child.pid,
    exited,
    get leftovers() {
      return leftovers
    },
    onProcessIds(listener) {
      listeners.push(listener)
      if (tracker) listener(tracker.ids)
    },
    async stop(graceMs: number) {
      if (orunExited || !child.pid) {
        await exited.catch(() => undefined)
        return
      }
      track()
      signalProcesses([-child.pid], 'SIGTERM')
      const timer = setTimeout(killJob, graceMs)
      await exited.catch(() => undefined)
      clearTimeout(timer)
    }
  }
}
