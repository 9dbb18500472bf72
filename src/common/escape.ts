/**
 * Plan contents (job ids, components, environments, check names...) and other
 * text the action does not control, made safe for the two places it is shown:
 * the runner's log, where a line can be read as a workflow command, and the
 * markdown step summaries, where text can become HTML, links or break a table
 * or a mermaid chart. Such text is always shown literally, never interpreted.
 *
 * The runner reads a line as a command when, after leading whitespace, it
 * starts with `::` (`::set-output name=x::v`), or when it holds `##[` anywhere
 * (the legacy form, `##[set-output name=x]v`). It splits lines on `\n`, `\r`
 * and `\r\n`.
 */

/** Identifier-like text that needs no quoting in a log line (ids like `api@dev.smoke`, `api.dev.smoke`). */
const PLAIN_LOG_VALUE = /^[A-Za-z0-9_.@/+=,~-]+$/

/**
 * Characters that break a line, hide text or reorder it on screen: C0/C1 controls,
 * line/paragraph separators, zero-width and bidirectional formatting characters, BOM.
 */
// eslint-disable-next-line no-control-regex -- control characters are what this finds
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g

const unicodeEscape = (char: string) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`

/**
 * A value from the plan for a log line or an annotation: unchanged when it is
 * identifier-like, else a JSON string literal (quoted, one line, control and
 * invisible characters escaped, `##[` written `#\u0023[`). `JSON.parse` of the
 * result gives the value back, so it is still exactly what the plan holds.
 */
export function inline(value: string): string {
  if (PLAIN_LOG_VALUE.test(value)) return value
  return JSON.stringify(value).replace(INVISIBLE, unicodeEscape).replace(/##\[/g, '#\\u0023[')
}

/** Whitespace the runner trims before looking for `::` (.NET's Char.IsWhiteSpace, and JS's). */
const COMMAND_START = /^([\s\u0085]*)::/
const LEGACY_COMMAND = /##\[/g

/**
 * Text for plain log output (core.info): every line the runner would read as
 * a workflow command is defused with a backslash (`\::set-output...`,
 * `#\#[...`); a lone `\r` becomes a line break, as the runner would read it.
 * Use inline() for the values inside a message; this is the guard for the
 * whole printed text.
 */
export function commandSafe(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .map(line => line.replace(COMMAND_START, '$1\\::').replace(LEGACY_COMMAND, '#\\#['))
    .join('\n')
}

/**
 * Markdown text that renders as itself with no escaping (`foundation · dev · Plan apply`,
 * `ubuntu-latest`): letters, digits, spaces, `·`, `.` and `-` cannot start markup, a link, a
 * mention or HTML, except `www.`, which GitHub links.
 */
const PLAIN_MARKDOWN = /^[\p{L}\p{N} ·.-]*$/u
const BARE_LINK = /www\./i

/**
 * Text in a markdown code span, shown literally (no HTML, links, mentions or
 * emphasis inside code). Line breaks are shown as `\n`/`\r` (a newline would
 * end a table row); with `inTable`, pipes are escaped, which GitHub's tables
 * undo inside code spans too. The fence is longer than any backtick run inside.
 */
export function markdownCode(text: string, inTable = false): string {
  if (!text) return ''
  let body = text.replace(/\r\n|\r|\n/g, match => (match === '\r' ? '\\r' : '\\n'))
  body = body.replace(INVISIBLE, unicodeEscape)
  if (inTable) body = body.replace(/\|/g, '\\|')
  const longestRun = Math.max(0, ...(body.match(/`+/g) ?? []).map(run => run.length))
  const fence = '`'.repeat(longestRun + 1)
  // CommonMark strips one space from each end when both are spaces, and a backtick
  // next to the fence would join it: pad, and the padding is what gets stripped.
  const pad =
    body.startsWith('`') ||
    body.endsWith('`') ||
    (body.startsWith(' ') && body.endsWith(' ') && body.trim() !== '')
  return pad ? `${fence} ${body} ${fence}` : `${fence}${body}${fence}`
}

/** Text for markdown prose or a table cell: as is when it cannot be markup (`dev`, `api · dev · Deploy`), else a code span. */
export function markdownLiteral(text: string, inTable = false): string {
  return PLAIN_MARKDOWN.test(text) && !BARE_LINK.test(text) ? text : markdownCode(text, inTable)
}

/**
 * A quoted mermaid label (`id["..."]`) that shows the text as is: every
 * character that mermaid or the HTML it renders to would interpret (quotes,
 * `<`, `>`, `&`, `#` that starts an entity, backticks that start a markdown
 * string) is written as a numeric entity code, which mermaid turns back into
 * that character; line breaks become spaces (a label is one line of the chart).
 */
export function mermaidLabel(text: string): string {
  const body = text
    .replace(/\r\n|\r|\n/g, ' ')
    .replace(INVISIBLE, '')
    .replace(/[#"<>&`]/g, char => (char === '"' ? '#quot;' : `#${char.charCodeAt(0)};`))
  return `"${body}"`
}

// Status summary contexts: HTML inside <summary>/<a>, entity-escaped prose, gantt names, fenced blocks.

const htmlEntities: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;'
}

/** Text for HTML contexts (<summary>, <a>), on one line. */
export function htmlText(text: string): string {
  return oneLine(text).replace(/[&<>"']/g, c => htmlEntities[c])
}

/**
 * Text inside a markdown table cell or a paragraph: HTML-escaped, and every
 * character markdown gives a meaning (emphasis, links, code, the cell
 * separator) written as an entity so it shows literally.
 */
export function markdownText(text: string): string {
  return (
    htmlText(text)
      .replace(/[\\`*_[\]|~:]/g, c => `&#${c.charCodeAt(0)};`)
      // GFM links bare www. addresses too (the colon above already stops http:// ones).
      .replace(/www\./gi, m => `${m.slice(0, 3)}&#46;`)
  )
}

/**
 * A mermaid node or subgraph label of several lines (the status charts), quoted, one argument per line. Mermaid's
 * own entity codes keep quotes, tags, brackets and backticks literal, so the
 * only markup left in the label is the line break this function adds.
 */
export function mermaidLines(...lines: string[]): string {
  const coded = lines.map(line =>
    oneLine(line).replace(/[&<>"'`#;|{}[\]()]/g, c => `#${c.charCodeAt(0)};`)
  )
  return `"${coded.join('<br/>')}"`
}

/** A gantt task or section name: mermaid has no quoting there, so its syntax characters are replaced. */
export function ganttName(text: string): string {
  const cleaned = oneLine(text)
    .replace(/[:;#%`<>&"]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
  return cleaned || '(unnamed)'
}

/** A fence (``` or longer) that no run of backticks inside text can close. */
export function codeFence(text: string): string {
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map(m => m[0].length))
  return '`'.repeat(longest + 1)
}

/** A block of literal text (an error, a log tail) in a fenced code block. */
export function codeBlock(text: string): string {
  const fence = codeFence(text)
  return `${fence}text\n${text.replace(/\r\n?/g, '\n').replace(/\n+$/, '')}\n${fence}`
}

/**
 * One line for the runner's log: without line breaks no text can start a line
 * of its own, so it cannot become a workflow command (::error::, ::add-mask::).
 */
export function logText(text: string): string {
  // One line, and not one the runner reads as a command either (`::error::…` alone on it).
  return commandSafe(oneLine(text))
}

/** One line, with the characters that hide text or reorder it on screen (U+202E, U+200B...) removed. */
function oneLine(text: string): string {
  return text.replace(/[\r\n\u2028\u2029]+/g, ' ').replace(INVISIBLE, '')
}
