/**
 * Reads a process's stdout the way the GitHub runner does, to find the
 * workflow commands in it (actions/runner ActionCommand.TryParseV2/TryParse):
 * - lines split on `\r\n`, `\n` and `\r`;
 * - `::name props::data` when the line, after leading whitespace, starts with
 *   `::` and holds a second `::`;
 * - else the legacy `##[name props]data`, anywhere in the line.
 * Only names the runner registers count (others are printed as text).
 */
export const RUNNER_COMMANDS = new Set([
  'add-mask',
  'add-matcher',
  'add-path',
  'debug',
  'echo',
  'endgroup',
  'error',
  'group',
  'internal-set-repo-path',
  'notice',
  'remove-matcher',
  'save-state',
  'set-env',
  'set-output',
  'stop-commands',
  'warning'
])

export interface WorkflowCommand {
  name: string
  data: string
  line: string
}

/** .NET's Char.IsWhiteSpace, which the runner's TrimStart uses. */
const LEADING_SPACE = /^[\s\u0085]*/

export function workflowCommands(stdout: string): WorkflowCommand[] {
  const found: WorkflowCommand[] = []
  for (const line of stdout.split(/\r\n|\n|\r/)) {
    const trimmed = line.replace(LEADING_SPACE, '')
    if (trimmed.startsWith('::')) {
      const end = trimmed.indexOf('::', 2)
      if (end >= 0) {
        const name = trimmed.slice(2, end).split(' ')[0]
        if (RUNNER_COMMANDS.has(name.toLowerCase())) {
          found.push({ name: name.toLowerCase(), data: trimmed.slice(end + 2), line })
          continue
        }
      }
    }
    const legacy = line.indexOf('##[')
    if (legacy >= 0) {
      const close = line.indexOf(']', legacy)
      if (close >= 0) {
        const name = line.slice(legacy + 3, close).split(' ')[0]
        if (RUNNER_COMMANDS.has(name.toLowerCase()))
          found.push({ name: name.toLowerCase(), data: line.slice(close + 1), line })
      }
    }
  }
  return found
}

/**
 * The commands the runner acts on, with where each line starts in stdout: as
 * workflowCommands, but `::stop-commands::<token>` stops processing until a line
 * that is `::<token>::` (actions/runner ActionCommandManager: the resume line,
 * trimmed, compared to the token; everything in between is printed as text).
 */
export function effectiveCommands(stdout: string): (WorkflowCommand & { offset: number })[] {
  const found: (WorkflowCommand & { offset: number })[] = []
  let stopToken: string | undefined
  let offset = 0
  for (const match of stdout.matchAll(/([^\r\n]*)(\r\n|\n|\r|$)/g)) {
    const line = match[1]
    const at = offset
    offset += match[0].length
    if (!match[0]) break
    if (stopToken !== undefined) {
      if (line.trim() === `::${stopToken}::`) stopToken = undefined
      continue
    }
    const [command] = workflowCommands(line)
    if (!command) continue
    if (command.name === 'stop-commands') stopToken = command.data
    found.push({ ...command, offset: at })
  }
  return found
}
