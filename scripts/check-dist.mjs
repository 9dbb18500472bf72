// Fails when the committed dist/ is not what a fresh bundle of src/ produces,
// or when ncc left an unresolved-module placeholder that would only fail at run time.
// The fresh bundle is built in a temporary folder and compared file by file, so dist/ stays as
// committed while it builds (npm test runs the jest suites on dist/ at the same time); when
// they differ, the fresh build replaces dist/ (the check-dist workflow uploads it).
import { execFileSync } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

const walk = dir =>
  readdirSync(dir).flatMap(name => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? walk(p) : [p]
  })

const fresh = mkdtempSync(join(tmpdir(), 'orun-check-dist-'))
try {
  execFileSync(process.execPath, ['scripts/build.mjs', fresh], { stdio: 'inherit' })

  const problems = []
  const freshFiles = walk(fresh).map(file => relative(fresh, file))
  for (const file of freshFiles.filter(f => f.endsWith('.js'))) {
    if (readFileSync(join(fresh, file), 'utf8').includes('@@notfound')) {
      problems.push(
        `dist/${file} contains ncc's @@notfound placeholder: a module could not be resolved at build time.`
      )
    }
  }
  const committed = existsSync('dist') ? walk('dist').map(file => relative('dist', file)) : []
  const differing = [...new Set([...freshFiles, ...committed])]
    .sort()
    .filter(
      file =>
        !freshFiles.includes(file) ||
        !committed.includes(file) ||
        !readFileSync(join(fresh, file)).equals(readFileSync(join('dist', file)))
    )
  const uncommitted = execFileSync('git', ['status', '--porcelain', '--', 'dist'], {
    encoding: 'utf8'
  }).trim()
  if (differing.length) {
    rmSync('dist', { recursive: true, force: true })
    cpSync(fresh, 'dist', { recursive: true })
  }
  if (differing.length || uncommitted) {
    const changed = differing.length
      ? differing.map(file => ` M dist/${file}`).join('\n')
      : uncommitted
    problems.push(
      `dist/ does not match a fresh build of src/:\n${changed}\nRun \`npm run build\` and commit dist/.`
    )
  }
  if (problems.length) {
    console.error(problems.join('\n'))
    process.exitCode = 1
  } else {
    console.log('dist/ is up to date with src/.')
  }
} finally {
  rmSync(fresh, { recursive: true, force: true })
}
