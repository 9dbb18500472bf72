/**
 * The note a job carried over from an earlier attempt holds as its error text: in a re-run, a
 * runner claims an earlier success in the new attempt's run and reports it success with this
 * note, without running it. The run action writes it (run/rerun.ts) and reads it back (an earlier
 * attempt's carried job, the duration estimates); the status action reads it, and writes it for
 * what a results record says was carried.
 */
export interface CarriedOrigin {
  /** The attempt that ran the job. */
  attempt: number
  /** The runner that ran it. */
  runner: string
}

const PREFIX = 'carried over from '
const FULL = /^carried over from attempt (\d+) \(runner (.*)\)$/
const UNNAMED = `${PREFIX}an earlier attempt`

/** The note; without an origin (a record that names no runner), "an earlier attempt". */
export function carriedNote(origin?: CarriedOrigin): string {
  return origin ? `${PREFIX}attempt ${origin.attempt} (runner ${origin.runner})` : UNNAMED
}

/** The origin a note names, {} for an unnamed one, undefined when the text is no such note. */
export function readCarriedNote(
  text: string | null | undefined
): Partial<CarriedOrigin> | undefined {
  if (!text) return undefined
  if (text === UNNAMED) return {}
  const match = FULL.exec(text)
  return match ? { attempt: Number(match[1]), runner: match[2]! } : undefined
}
