// Writes docs/inputs.md from every action.yml in the repository, so the reference a user
// reads is the one GitHub enforces. `--check` (part of `npm test`) fails when the committed
// page differs from what this script would write.
//
//   node scripts/gen-docs-inputs.mjs           rewrite docs/inputs.md
//   node scripts/gen-docs-inputs.mjs --check   fail when docs/inputs.md is stale
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs'
import { join, dirname, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import * as prettier from 'prettier'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const target = join(root, 'docs', 'inputs.md')
// How users reference this repository in `uses:`; a sub-action adds its folder.
const repository = 'orun/action'
// Folders that never hold an action of this repository.
const skipped = new Set(['node_modules', 'dist', 'coverage', '.git', '.github', '.bench', '.demo'])

/** Every action.yml (or action.yaml) below the repository root, root first, then by folder. */
function findActions(dir = root) {
  const found = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!skipped.has(entry.name)) found.push(...findActions(join(dir, entry.name)))
    } else if (entry.name === 'action.yml' || entry.name === 'action.yaml') {
      found.push(join(dir, entry.name))
    }
  }
  return found.sort((a, b) => {
    const da = relative(root, dirname(a))
    const db = relative(root, dirname(b))
    if (da === '' || db === '') return da === '' ? -1 : 1
    return da.localeCompare(db)
  })
}

/**
 * Markdown-safe text of a description: `${{ … }}` expressions and words holding <placeholders>
 * become code (else markdown would read them as HTML), and pipes cannot end a table cell.
 */
function cell(text) {
  return String(text ?? '')
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/\$\{\{.*?\}\}|[^\s(),;`]*<[^\s>]+>[^\s(),;`]*/g, match => {
      const trailing = /[.:]+$/.exec(match)?.[0] ?? ''
      return `\`${match.slice(0, match.length - trailing.length)}\`${trailing}`
    })
    .replace(/\|/g, '\\|')
}

function code(value) {
  const text = String(value ?? '').trim()
  return text === '' ? '' : `\`${text}\``
}

function section(file) {
  const action = parse(readFileSync(file, 'utf8'))
  const folder = relative(root, dirname(file)).split(sep).join('/')
  const uses = folder === '' ? repository : `${repository}/${folder}`
  const lines = [`## \`${uses}\`: ${action.name}`, '', cell(action.description), '']
  const inputs = Object.entries(action.inputs ?? {})
  if (inputs.length > 0) {
    lines.push('| input | required | default | description |', '| --- | --- | --- | --- |')
    for (const [name, input] of inputs) {
      const required = input?.required === true || input?.required === 'true' ? 'yes' : 'no'
      lines.push(
        `| \`${name}\` | ${required} | ${code(input?.default)} | ${cell(input?.description)} |`
      )
    }
    lines.push('')
  }
  const outputs = Object.entries(action.outputs ?? {})
  if (outputs.length > 0) {
    lines.push('| output | description |', '| --- | --- |')
    for (const [name, output] of outputs) {
      lines.push(`| \`${name}\` | ${cell(output?.description)} |`)
    }
    lines.push('')
  }
  return lines.join('\n')
}

async function render() {
  const page = [
    '# Inputs and outputs',
    '',
    '<!-- Generated from the action.yml files by `npm run docs:inputs`; do not edit by hand. -->',
    '',
    ...findActions().map(section)
  ].join('\n')
  const options = (await prettier.resolveConfig(target)) ?? {}
  return prettier.format(page, { ...options, filepath: target })
}

const page = await render()
if (process.argv.includes('--check')) {
  const current = existsSync(target) ? readFileSync(target, 'utf8') : ''
  if (current !== page) {
    console.error(
      'docs/inputs.md is out of sync with the action.yml files. Run `npm run docs:inputs` and commit docs/inputs.md.'
    )
    process.exit(1)
  }
  console.log('docs/inputs.md is in sync with the action.yml files.')
} else {
  writeFileSync(target, page)
  console.log(`wrote ${relative(root, target)}`)
}
