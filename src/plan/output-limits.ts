import * as core from '@actions/core'
import { UserError } from '../common/errors.js'

/**
 * GitHub's limits on what a step hands on, checked before the plan action
 * writes it, so an oversized plan fails here with a fix rather than later,
 * in GitHub's words or not at all (a truncated matrix):
 * - job outputs: at most 1 MB per job, in total, "approximated based on UTF-16
 *   encoding" (2 bytes per UTF-16 code unit); 50 MB per workflow run;
 * - a step summary: at most 1 MiB (the runner refuses to upload a bigger one).
 */
export const JOB_OUTPUTS_LIMIT_BYTES = 1_000_000
export const RUN_OUTPUTS_LIMIT_BYTES = 50_000_000
/**
 * The share of the run's total above which the plan step warns. One job maps at most 1 MB (2 %),
 * but a plan split into slices (one plan step and matrix each, the way past 256 jobs) repeats its
 * outputs once per slice, next to every other job's outputs in the run.
 */
export const LARGE_RUN_SHARE = 0.05
export const STEP_SUMMARY_LIMIT_BYTES = 1024 * 1024

/** The size GitHub counts for an output value. */
export const outputSize = (value: string): number => value.length * 2

const kb = (bytes: number) => `${Math.ceil(bytes / 1000)} KB`

const shrink =
  "Scope the plan step to fewer jobs with 'environments' or 'components' (one matrix per scope), or shorten the component, environment and job names in intent.yaml."

/**
 * Refuses an output that alone exceeds the per-job limit (naming it), and warns
 * when all of them together do: a workflow only hits the limit when it maps
 * those outputs into its job outputs, so it is told which to map.
 */
export function checkOutputSizes(outputs: Record<string, string>): void {
  const sizes = Object.entries(outputs).map(([name, value]) => ({ name, size: outputSize(value) }))
  const oversized = sizes.filter(output => output.size > JOB_OUTPUTS_LIMIT_BYTES)
  if (oversized.length) {
    throw new UserError(
      `Output${oversized.length > 1 ? 's' : ''} ${oversized.map(o => `'${o.name}' (${kb(o.size)})`).join(', ')} ` +
        `exceed${oversized.length > 1 ? '' : 's'} GitHub's limit of ${kb(JOB_OUTPUTS_LIMIT_BYTES)} of job outputs per job, ` +
        `so GitHub would drop ${oversized.length > 1 ? 'them' : 'it'} or fail the workflow. ${shrink}`
    )
  }
  const total = sizes.reduce((sum, output) => sum + output.size, 0)
  if (total >= RUN_OUTPUTS_LIMIT_BYTES * LARGE_RUN_SHARE) {
    const share = total / RUN_OUTPUTS_LIMIT_BYTES
    core.warning(
      `The plan step's outputs total ${kb(total)} of the ${RUN_OUTPUTS_LIMIT_BYTES / 1_000_000} MB GitHub allows for the outputs of a whole workflow run (every job's outputs together): ${Math.floor(1 / share)} plan steps like this in one run would reach it, and GitHub would drop or refuse the rest. ` +
        `Map only the output the matrix needs ('matrix' or 'jobs'), and keep the number of slices small. ${shrink}`
    )
  }
  if (total > JOB_OUTPUTS_LIMIT_BYTES) {
    const big = sizes
      .filter(output => output.size > JOB_OUTPUTS_LIMIT_BYTES / 10)
      .sort((a, b) => b.size - a.size)
    core.warning(
      `The plan step's outputs total ${kb(total)}, more than GitHub's ${kb(JOB_OUTPUTS_LIMIT_BYTES)} of job outputs per job: ` +
        `map only one of ${big.map(o => `'${o.name}' (${kb(o.size)})`).join(', ')} into the plan job's outputs. ${shrink}`
    )
  }
}

/**
 * The step summary as written: unchanged when it fits in GitHub's limit, else
 * a short note in its place, with a warning saying why (GitHub would refuse
 * the whole summary with an error annotation).
 */
export function fitSummary(markdown: string): string {
  const size = Buffer.byteLength(markdown)
  if (size <= STEP_SUMMARY_LIMIT_BYTES) return markdown
  core.warning(
    `The plan summary is ${Math.ceil(size / 1024)} KiB, more than GitHub's step summary limit of ${STEP_SUMMARY_LIMIT_BYTES / 1024} KiB, ` +
      `so a short note is written instead; the plan file and the 'jobs' output have every job. ${shrink}`
  )
  return (
    '## orun plan\n\n' +
    `The summary of this plan (${Math.ceil(size / 1024)} KiB) is over GitHub's step summary limit of ${STEP_SUMMARY_LIMIT_BYTES / 1024} KiB; ` +
    "the plan file and the plan step's 'jobs' output have every job.\n"
  )
}
