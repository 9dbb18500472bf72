/**
 * Removes secrets from a job log before it leaves the runner: every token this
 * action minted, every value the job registered with `::add-mask::`, and the
 * values of the environment variables named in `redact-env`. GitHub masks
 * these in its own log view, but the backend stores the raw text.
 */
export const REDACTED = '***'
/** Shorter values would shred ordinary words; GitHub refuses to mask them meaningfully too. */
const MIN_SECRET_LENGTH = 3
const maskCommand = /::add-mask::(.*?)\r?$/gm

export class Redactor {
  private readonly secrets = new Set<string>()

  constructor(
    values: Iterable<string> = [],
    private readonly dynamic: () => Iterable<string> = () => []
  ) {
    for (const value of values) this.add(value)
  }

  add(value: string | undefined): void {
    const trimmed = value?.trim()
    if (!trimmed || trimmed.length < MIN_SECRET_LENGTH) return
    this.secrets.add(trimmed)
    // A multi-line secret is masked line by line too, as GitHub does.
    for (const line of trimmed.split(/\r?\n/))
      if (line.trim().length >= MIN_SECRET_LENGTH) this.secrets.add(line.trim())
  }

  /** Learns `::add-mask::` values from job output (they may arrive after the secret was printed). */
  learnFrom(text: string): void {
    for (const match of text.matchAll(maskCommand)) {
      // The runner unescapes command data (core.setSecret escapes newlines and %); the
      // escaped form is masked too, as the command line itself stays in the uploaded log.
      this.add(match[1])
      this.add(unescapeCommandData(match[1]))
    }
  }

  redact(text: string): string {
    for (const value of this.dynamic()) this.add(value)
    this.learnFrom(text)
    // Longest first, so a secret that contains another is replaced whole.
    const ordered = [...this.secrets].sort((a, b) => b.length - a.length)
    let out = text
    for (const secret of ordered) out = out.split(secret).join(REDACTED)
    return out
  }
}

/** Workflow command data escaping, undone: %0D, %0A and %25 (in one pass, so %250A stays %0A). */
function unescapeCommandData(data: string): string {
  return data.replace(/%(0D|0A|25)/gi, code =>
    code === '%25' ? '%' : code.toUpperCase() === '%0D' ? '\r' : '\n'
  )
}

/** Values of the named environment variables, for `redact-env`. */
export function envValues(
  names: readonly string[],
  env: NodeJS.ProcessEnv = process.env
): string[] {
  return names.map(name => env[name]).filter((value): value is string => Boolean(value))
}
