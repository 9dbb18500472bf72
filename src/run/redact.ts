/**
 * Removes secrets from a job log before it leaves the runner: every token this
 * action minted, every value the job registered with `::add-mask::`, and the
 * values of the environment variables named in `redact-env`. GitHub masks
 * these in its own log view, but the backend stores the raw text.
 *
 * Like GitHub's own masker (the runner's ValueEncoders), each value is also
 * removed in the encodings a job commonly prints a secret in: base64 at each
 * of the three byte alignments it can have inside a longer encoded text (and
 * base64url), URL escaping, JSON string escaping, XML/HTML escaping, and
 * workflow-command escaping.
 */
import { secretValuesOf } from './child-env.js'

export const REDACTED = '***'
/** Shorter values would shred ordinary words; GitHub refuses to mask them meaningfully too. */
const MIN_SECRET_LENGTH = 3
/** `::add-mask::v` (V2, also with leading whitespace) and the legacy `##[add-mask]v`. */
const maskCommand = /(?:::add-mask(?: [^:\r\n]*)?::|##\[add-mask\])(.*?)\r?$/gm

export class Redactor {
  private readonly secrets = new Set<string>()
  /** Values already expanded into their encodings (tokens are offered again on every redact). */
  private readonly seen = new Set<string>()
  private ordered: string[] = []
  private orderedSize = -1

  constructor(
    values: Iterable<string> = [],
    private readonly dynamic: () => Iterable<string> = () => []
  ) {
    for (const value of values) this.add(value)
  }

  add(value: string | undefined): void {
    if (!value || this.seen.has(value)) return
    this.seen.add(value)
    const trimmed = value.trim()
    if (trimmed.length < MIN_SECRET_LENGTH) return
    this.addEncoded(trimmed)
    // A multi-line secret is masked line by line too, as GitHub does.
    for (const line of trimmed.split(/\r?\n/)) {
      if (line.trim().length >= MIN_SECRET_LENGTH) this.addEncoded(line.trim())
    }
  }

  private addEncoded(value: string): void {
    for (const form of encodedForms(value)) {
      if (form.length >= MIN_SECRET_LENGTH) this.secrets.add(form)
    }
  }

  /** Learns `::add-mask::` values from job output (they may arrive after the secret was printed). */
  learnFrom(text: string): void {
    for (const data of maskCommandData(text)) {
      // The runner unescapes command data (core.setSecret escapes newlines and %); the
      // escaped form is masked too, as the command line itself stays in the uploaded log.
      this.add(data)
      this.add(unescapeCommandData(data))
    }
  }

  redact(text: string): string {
    for (const value of this.dynamic()) this.add(value)
    this.learnFrom(text)
    if (this.orderedSize !== this.secrets.size) {
      // Longest first, so a secret that contains another (or its encoding) is replaced whole.
      this.ordered = [...this.secrets].sort((a, b) => b.length - a.length)
      this.orderedSize = this.secrets.size
    }
    let out = text
    for (const secret of this.ordered)
      if (out.includes(secret)) out = out.split(secret).join(REDACTED)
    return out
  }
}

/** The data (still escaped) of every `::add-mask::` command in a text. */
export function maskCommandData(text: string): string[] {
  return [...text.matchAll(maskCommand)].map(match => match[1]).filter(Boolean)
}

/** The value and the forms it takes when a job prints it encoded. */
export function encodedForms(value: string): Set<string> {
  const forms = new Set<string>([value])
  const bytes = Buffer.from(value, 'utf8')
  for (let shift = 0; shift < 3 && shift < bytes.length; shift++) {
    const base64 = base64Inner(bytes.subarray(shift))
    forms.add(base64)
    forms.add(base64.replace(/\+/g, '-').replace(/\//g, '_'))
  }
  const uri = encodeURIComponent(value)
  // RFC 3986 (.NET's Uri.EscapeDataString) also escapes !'()*; some encoders write lower-case hex.
  const strictUri = uri.replace(
    /[!'()*]/g,
    char => `%${char.charCodeAt(0).toString(16).toUpperCase()}`
  )
  forms
    .add(uri)
    .add(strictUri)
    .add(strictUri.replace(/%[0-9A-F]{2}/g, hex => hex.toLowerCase()))
  forms.add(new URLSearchParams({ v: value }).toString().slice(2)) // form encoding: space as +
  const json = JSON.stringify(value).slice(1, -1)
  forms.add(json)
  // Go's encoding/json (orun is written in Go) also escapes <, >, & and U+2028/U+2029.
  forms.add(
    json.replace(
      /[<>&\u2028\u2029]/g,
      char => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`
    )
  )
  const xml = value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
  forms.add(xml.replace(/'/g, '&apos;')).add(xml.replace(/'/g, '&#39;'))
  forms.add(value.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A'))
  // A quoted value ("...") is also masked without its quotes, as GitHub does.
  if (value.length > 8 && value.startsWith('"') && value.endsWith('"'))
    forms.add(value.slice(1, -1))
  return forms
}

/**
 * The base64 characters that depend on these bytes alone, wherever they sit in
 * a longer encoded text starting at a 3-byte boundary: no padding, and no last
 * character that also holds bits of whatever follows.
 */
function base64Inner(bytes: Buffer): string {
  const encoded = bytes.toString('base64').replace(/=+$/, '')
  return bytes.length % 3 === 0 ? encoded : encoded.slice(0, -1)
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

/**
 * The redactor of a job's log, the same in the main step and the post step (which uploads
 * the log when the main step could not): the `redact-env` values, every value the child's
 * environment leaves out (the action's inputs, among them `token` and `github-token`, and the
 * runtime credentials), every `ORUN_SECRET_*` value, the given input values (read through
 * the toolkit, which is how the inputs reach an in-process caller), and the tokens minted.
 * Values learnt from the job's own `::add-mask::` lines are added as its log is read.
 */
export function jobRedactor(options: {
  redactEnv: readonly string[]
  inputSecrets: readonly (string | undefined)[]
  tokens: () => Iterable<string>
  env?: NodeJS.ProcessEnv
}): Redactor {
  const env = options.env ?? process.env
  return new Redactor(
    [
      ...envValues(options.redactEnv, env),
      ...secretValuesOf(env),
      ...options.inputSecrets.filter((value): value is string => Boolean(value))
    ],
    options.tokens
  )
}
