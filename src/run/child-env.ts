import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { SECRET_OVERRIDE_PREFIX } from '../plan/model.js'

/**
 * The environment orun (and so every job step) runs with: what a plain `run:`
 * step of the same job would get, not what this JavaScript action gets.
 *
 * The runner hands a JavaScript action more than a `run:` step: its inputs
 * (`INPUT_*`, among them the backend token and github-token), its saved state
 * (`STATE_*`), and the Actions runtime credentials and service URLs
 * (`ACTIONS_RUNTIME_TOKEN`, `ACTIONS_RUNTIME_URL`, `ACTIONS_CACHE_URL`,
 * `ACTIONS_RESULTS_URL`, `ACTIONS_CACHE_SERVICE_V2`; the runner's
 * NodeScriptActionHandler sets them, its ScriptHandler for `run:` does not).
 * `ACTIONS_ID_TOKEN_REQUEST_*` is given to `run:` steps too (cloud logins in
 * job steps use it) and is kept.
 */

const JS_ACTION_ONLY = new Set([
  'ACTIONS_RUNTIME_TOKEN',
  'ACTIONS_RUNTIME_URL',
  'ACTIONS_CACHE_URL',
  'ACTIONS_RESULTS_URL',
  'ACTIONS_CACHE_SERVICE_V2'
])
const JS_ACTION_ONLY_PREFIXES = ['INPUT_', 'STATE_']

/**
 * Inputs of the run action whose values are plain settings, not secrets: a job
 * id or an environment name shows up in every log, and masking it would shred
 * the log. Every other removed value (the tokens, the runtime URLs, inputs this
 * action does not know) is redacted from the stored log.
 */
const PLAIN_INPUTS = new Set(
  [
    'run-id',
    'plan-id',
    'job',
    'environments',
    'components',
    'backend-url',
    'audience',
    'working-directory',
    'plan-file',
    'artifact-name',
    'orun-version',
    'orun-path',
    'orun-download-url',
    'args',
    'dependency-timeout',
    'heartbeat-interval',
    'on-duplicate',
    'log-upload-interval',
    'redact-env'
  ].map(name => `INPUT_${name.toUpperCase()}`)
)

export function isJsActionOnly(name: string): boolean {
  return JS_ACTION_ONLY.has(name) || JS_ACTION_ONLY_PREFIXES.some(p => name.startsWith(p))
}

export interface ChildEnvironment {
  env: NodeJS.ProcessEnv
  /** Names removed from the action's environment, sorted. */
  removed: string[]
}

/**
 * The child's environment: the action's minus what only JavaScript actions get,
 * plus what orun needs on a runner:
 * - `ORUN_NO_AUTO_REFRESH=1` (skips a catalog refresh of up to 10 s), unless set;
 * - `DOCKER_CONFIG=~/.docker` when that exists and is not set: orun moves HOME
 *   to a per-job temp dir, and `docker login` earlier in the job wrote there.
 */
export function childEnvironment(
  parent: NodeJS.ProcessEnv,
  home: string = parent.HOME || homedir()
): ChildEnvironment {
  const env: NodeJS.ProcessEnv = {}
  const removed: string[] = []
  for (const [name, value] of Object.entries(parent)) {
    if (isJsActionOnly(name)) removed.push(name)
    else env[name] = value
  }
  if (env.ORUN_NO_AUTO_REFRESH === undefined) env.ORUN_NO_AUTO_REFRESH = '1'
  const dockerConfig = join(home, '.docker')
  if (!env.DOCKER_CONFIG && existsSync(dockerConfig)) env.DOCKER_CONFIG = dockerConfig
  return { env, removed: removed.sort() }
}

/**
 * Values to redact from the stored log: those of every removed variable except
 * plain settings, and every `ORUN_SECRET_*` (GitHub masks `secrets.*` in its own
 * log view, but the backend stores the raw text).
 */
export function secretValuesOf(parent: NodeJS.ProcessEnv): string[] {
  return Object.entries(parent)
    .filter(
      ([name]) =>
        (isJsActionOnly(name) && !PLAIN_INPUTS.has(name) && name !== 'ACTIONS_CACHE_SERVICE_V2') ||
        name.startsWith(SECRET_OVERRIDE_PREFIX)
    )
    .map(([, value]) => value)
    .filter((value): value is string => Boolean(value))
}
