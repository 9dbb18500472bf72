import { SECRET_OVERRIDE_PREFIX, secretNeedsOf, type PlanJob } from '../plan/model.js'

/**
 * A job's `secretRefs`, checked before orun starts. With local state (which the
 * action forces), orun resolves a reference only from the environment variable
 * `ORUN_SECRET_<KEY>` and fails the job when a required one is missing
 * (cmd/orun/run_secrets.go). Checking first names every missing variable in
 * one message with the `env:` lines to add, and fails the job before any step
 * ran, so its dependents are blocked at once.
 */

export interface MissingSecret {
  /** The variable orun reads: ORUN_SECRET_<KEY>. */
  variable: string
  ref: string
  asEnv?: string
  /** Set but empty: what `${{ secrets.X }}` gives when secret X does not exist. */
  empty: boolean
}

/**
 * Required references whose ORUN_SECRET_<KEY> is unset or empty. orun itself
 * accepts an empty value; an empty required secret is almost always a GitHub
 * secret that does not exist in this repository or environment.
 */
export function missingSecrets(job: PlanJob, env: NodeJS.ProcessEnv): MissingSecret[] {
  const missing = new Map<string, MissingSecret>()
  // A reference orun cannot parse has no override variable: orun names it itself.
  for (const need of secretNeedsOf(job)) {
    const variable = need.overrideEnv
    if (need.optional || !variable) continue
    const value = env[variable]
    if (value || missing.has(variable)) continue
    missing.set(variable, { variable, ref: need.ref, asEnv: need.asEnv, empty: value === '' })
  }
  return [...missing.values()].sort((a, b) => a.variable.localeCompare(b.variable))
}

/** One message naming every missing variable, with the `env:` block that sets them. */
export function missingSecretsMessage(jobId: string, missing: MissingSecret[]): string {
  const names = missing
    .map(m => `${m.variable}${m.empty ? ' (set but empty)' : ''} for ${m.asEnv ?? m.ref}`)
    .join(', ')
  const lines = missing.map(m => {
    // GitHub secret names hold letters, digits and _ only.
    const secret = m.variable.slice(SECRET_OVERRIDE_PREFIX.length).replace(/[^A-Za-z0-9_]/g, '_')
    return `    ${m.variable}: \${{ secrets.${secret} }}`
  })
  return (
    `${jobId} needs secrets that are not set: ${names}. ` +
    'orun resolves secretRefs only from ORUN_SECRET_<KEY> variables when it runs with local state, ' +
    'so the job was not started and is reported failed. Add to the run step (with the GitHub secrets that hold the values):\n' +
    `  env:\n${lines.join('\n')}`
  )
}
