/**
 * Plan text (job ids, check names, environments) and backend text (errors,
 * logs, runner ids) shown in the status summary, made inert: it cannot close
 * a table cell, a code fence or a mermaid label, nor be read as HTML, a link
 * or a workflow command.
 *
 * Local to the status action until a shared src/common/escape.ts exists;
 * then these should become calls to it.
 */

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
 * A mermaid node or subgraph label, quoted, one argument per line. Mermaid's
 * own entity codes keep quotes, tags, brackets and backticks literal, so the
 * only markup left in the label is the line break this function adds.
 */
export function mermaidLabel(...lines: string[]): string {
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
  return oneLine(text)
}

function oneLine(text: string): string {
  return text.replace(/[\r\n\u2028\u2029]+/g, ' ')
}
