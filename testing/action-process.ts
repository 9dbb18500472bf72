import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Runs a bundled action (dist/<name>/index.js) as its own node process, set up the way a
 * GitHub runner starts it, and reads back what it wrote to the runner's files.
 *
 *   const result = await runActionProcess('dist/plan/index.js', {
 *     inputs: { 'orun-path': STANDIN_DIR, upload: 'false' },
 *     cwd: workspace
 *   })
 *   result.exitCode, result.outputs['plan-id'], result.summary
 *
 * Call cleanupActionProcesses() in afterAll to delete the runner folders made so far.
 */

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** Absolute path of the folder holding the stand-in `orun` (put it on PATH or pass it as orun-path). */
export const STANDIN_DIR = path.join(REPO_ROOT, 'testing', 'orun-standin')

export interface ActionProcessOptions {
  /** Action inputs by their action.yml names; action.yml defaults are NOT filled in. */
  inputs: Record<string, string>
  /** Added last, so it overrides everything below (e.g. GITHUB_RUN_ID, PATH, ACTIONS_RUNTIME_TOKEN). */
  env?: Record<string, string>
  /** Working directory, also GITHUB_WORKSPACE. Default: a fresh empty folder. */
  cwd?: string
  /** The process is killed and the promise rejected after this long. Default 30 s. */
  timeoutMs?: number
}

export interface ActionProcessResult {
  /** null when the process was ended by a signal. */
  exitCode: number | null
  stdout: string
  stderr: string
  /** What the action set with core.setOutput (GITHUB_OUTPUT). */
  outputs: Record<string, string>
  /** The GITHUB_STEP_SUMMARY file's content. */
  summary: string
  /** What the action saved with core.saveState (GITHUB_STATE). */
  state: Record<string, string>
}

/** Defaults for the workflow-run variables; override them through options.env. */
/**
 * The run action's inputs that tests against a local backend share: the stand-in orun, the
 * workspace's plan.json, and heartbeat and log uploads every second so a test need not wait.
 */
export function localRunInputs(backendUrl: string): Record<string, string> {
  return {
    'backend-url': backendUrl,
    'orun-path': STANDIN_DIR,
    'plan-file': 'plan.json',
    'heartbeat-interval': '1s',
    'log-upload-interval': '1s'
  }
}

export const DEFAULT_RUN_ID = '7000000001'
export const DEFAULT_RUN_ATTEMPT = '1'

// Variables the parent (a developer shell, or a CI job) may hold that would change the
// action's behaviour: the runtime token, inputs, the runner's own files, ORUN_BACKEND_URL...
const droppedPrefixes = ['ACTIONS_', 'INPUT_', 'GITHUB_', 'RUNNER_', 'ORUN_', 'STATE_']

const tempDirs: string[] = []

/** `INPUT_<NAME>` the way the runner names it: upper case, spaces to `_`, dashes kept. */
export function inputEnvName(name: string): string {
  return `INPUT_${name.replace(/ /g, '_').toUpperCase()}`
}

export async function runActionProcess(
  bundle: string,
  options: ActionProcessOptions
): Promise<ActionProcessResult> {
  return startActionProcess(bundle, options).done
}

export interface StartedActionProcess {
  /** The action's process, e.g. to send it the signals a runner sends on cancel. */
  child: ChildProcess
  /** Settles like runActionProcess; endedAt is when the process closed (epoch ms). */
  done: Promise<ActionProcessResult & { endedAt: number }>
  /** What the action saved with core.saveState so far (read while it runs). */
  state(): Record<string, string>
}

/** runActionProcess, with the process handed back while it runs. */
export function startActionProcess(
  bundle: string,
  options: ActionProcessOptions
): StartedActionProcess {
  const root = mkdtempSync(path.join(tmpdir(), 'orun-action-process-'))
  tempDirs.push(root)
  const cwd = options.cwd ?? mkdirIn(root, 'workspace')
  const files = {
    GITHUB_OUTPUT: path.join(root, 'output'),
    GITHUB_STEP_SUMMARY: path.join(root, 'step-summary'),
    GITHUB_STATE: path.join(root, 'state'),
    GITHUB_PATH: path.join(root, 'path'),
    GITHUB_ENV: path.join(root, 'env')
  }
  for (const file of Object.values(files)) writeFileSync(file, '')

  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!droppedPrefixes.some(prefix => key.startsWith(prefix))) env[key] = value
  }
  Object.assign(env, files, {
    GITHUB_ACTIONS: 'true',
    CI: 'true',
    GITHUB_WORKSPACE: cwd,
    GITHUB_RUN_ID: DEFAULT_RUN_ID,
    GITHUB_RUN_ATTEMPT: DEFAULT_RUN_ATTEMPT,
    GITHUB_REPOSITORY: 'octo-org/octo-repo',
    GITHUB_SERVER_URL: 'https://github.com',
    RUNNER_TEMP: mkdirIn(root, 'runner-temp'),
    RUNNER_TOOL_CACHE: mkdirIn(root, 'tool-cache'),
    RUNNER_OS: 'Linux'
  })
  for (const [name, value] of Object.entries(options.inputs)) env[inputEnvName(name)] = value
  Object.assign(env, options.env)

  const timeoutMs = options.timeoutMs ?? 30_000
  const child = spawn(process.execPath, [path.resolve(REPO_ROOT, bundle)], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const finished = new Promise<{
    exitCode: number | null
    stdout: string
    stderr: string
  }>((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', chunk => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', chunk => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(
        new Error(
          `${bundle} did not exit within ${timeoutMs} ms.\nstdout:\n${stdout}\nstderr:\n${stderr}`
        )
      )
    }, timeoutMs)
    child.once('error', error => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('close', code => {
      clearTimeout(timer)
      resolve({ exitCode: code, stdout, stderr })
    })
  })

  const done = finished.then(({ exitCode, stdout, stderr }) => ({
    endedAt: Date.now(),
    exitCode,
    stdout,
    stderr,
    outputs: parseFileCommands(readFileSync(files.GITHUB_OUTPUT, 'utf8')),
    summary: readFileSync(files.GITHUB_STEP_SUMMARY, 'utf8'),
    state: parseFileCommands(readFileSync(files.GITHUB_STATE, 'utf8'))
  }))
  return {
    child,
    done,
    state: () => parseFileCommands(readFileSync(files.GITHUB_STATE, 'utf8'))
  }
}

/** Deletes every folder runActionProcess created (plan files and other outputs included). */
export function cleanupActionProcesses(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

/**
 * Parses a GITHUB_OUTPUT / GITHUB_STATE file: `name<<DELIMITER` heredocs (what @actions/core
 * writes) and plain `name=value` lines. A later value for the same name wins, as on GitHub.
 */
export function parseFileCommands(text: string): Record<string, string> {
  const values: Record<string, string> = {}
  const lines = text.split('\n')
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]
    if (!line) continue
    const heredoc = /^([^=]+?)<<(.+)$/.exec(line)
    if (heredoc && (!line.includes('=') || line.indexOf('<<') < line.indexOf('='))) {
      const [, name, delimiter] = heredoc
      const end = lines.indexOf(delimiter, index + 1)
      if (end < 0) throw new Error(`file command '${name}' has no closing delimiter ${delimiter}`)
      values[name] = lines.slice(index + 1, end).join('\n')
      index = end
      continue
    }
    const equals = line.indexOf('=')
    if (equals <= 0) throw new Error(`malformed file command line: ${line}`)
    values[line.slice(0, equals)] = line.slice(equals + 1)
  }
  return values
}

function mkdirIn(parent: string, name: string): string {
  const dir = path.join(parent, name)
  mkdirSync(dir, { recursive: true })
  return dir
}
