/**
 * orun's validation errors, one finding each, with the file and line they name. orun prints an
 * error as `✕ <error>` (older releases: `Error: <error>`) on stderr; its loader reads YAML with
 * yaml.v3, whose texts name lines (cmd/orun/main.go validateFiles, internal/loader/loader.go):
 *
 *   ✕ failed to load intent: failed to parse intent YAML: yaml: line 7: did not find expected key
 *   ✕ failed to load intent: failed to parse intent YAML: yaml: unmarshal errors:
 *     line 7: cannot unmarshal !!str `foundation` into []string
 *   ✕ failed to parse component manifest apps/api/component.yaml: yaml: line 3: …
 *   ✕ normalization failed: duplicate component name: api
 *   ✕ trigger validation failed:
 *     component "api" subscription "dev": profileRules[0].profile is required
 */

export interface Finding {
  message: string
  /** The file the error is about, relative to the intent's directory. */
  file: string
  /** 1-based, when orun names a line. */
  line?: number
}

// orun colours its output when CLICOLOR_FORCE is set.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g
const ERROR_HEAD = /^(?:✕|✗|Error:)\s+(.*)$/

/** Every error in orun's output; intentFile is the file an error naming no other one is about. */
export function findingsOf(output: string, intentFile: string): Finding[] {
  const findings: Finding[] = []
  const lines = output.replace(ANSI, '').split(/\r?\n/)
  for (let index = 0; index < lines.length; index++) {
    const head = ERROR_HEAD.exec(lines[index].trimEnd())
    if (!head) continue
    // An error's own lines follow it, indented (yaml.v3's unmarshal errors, orun's joined lists).
    const details: string[] = []
    while (index + 1 < lines.length && /^\s+\S/.test(lines[index + 1])) {
      details.push(lines[++index].trim())
    }
    findings.push(...findingsOfError(head[1].trim(), details, intentFile))
  }
  return findings
}

function findingsOfError(text: string, details: string[], intentFile: string): Finding[] {
  const file = /component manifest (\S+?):/.exec(text)?.[1] ?? intentFile
  const syntax = /\byaml: line (\d+): /.exec(text)
  if (syntax) return [{ message: text, file, line: Number(syntax[1]) }]
  if (details.length === 0) return [{ message: text, file }]
  return details.map(detail => {
    const line = /^line (\d+): /.exec(detail)?.[1]
    return {
      message: `${text.replace(/:$/, '')}: ${detail}`,
      file,
      ...(line ? { line: Number(line) } : {})
    }
  })
}
