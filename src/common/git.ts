import * as exec from '@actions/exec'

/**
 * Questions to git about the checkout (git is not orun, so these are not in src/orun/cli.ts).
 * `orun plan --changed` swallows git errors: on a shallow checkout it silently finds no changes
 * and plans zero jobs, so the plan action asks git first.
 */

/** true/false from `git rev-parse --is-shallow-repository`; undefined when cwd is not a git work tree or git is missing. */
export async function isShallowRepository(cwd: string): Promise<boolean | undefined> {
  const answer = await gitOutput(cwd, ['rev-parse', '--is-shallow-repository'])
  if (answer === 'true') return true
  if (answer === 'false') return false
  return undefined
}

/** Whether `git merge-base base head` finds a common commit: the history `--changed` diffs against is there. */
export async function hasMergeBase(cwd: string, base: string, head: string): Promise<boolean> {
  return (await gitOutput(cwd, ['merge-base', base, head])) !== undefined
}

async function gitOutput(cwd: string, args: string[]): Promise<string | undefined> {
  try {
    const result = await exec.getExecOutput('git', args, {
      cwd,
      silent: true,
      ignoreReturnCode: true
    })
    return result.exitCode === 0 ? result.stdout.trim() : undefined
  } catch {
    return undefined // git is not installed
  }
}
