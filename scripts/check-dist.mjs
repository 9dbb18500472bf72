// Fails when the committed dist/ is not what a fresh bundle of src/ produces,
// or when ncc left an unresolved-module placeholder that would only fail at run time.
// When dist/'s build stamp matches the sources and dist/ itself (scripts/dist-stamp.mjs), dist/ is
// the build of these sources and nothing is rebuilt; CHECK_DIST_FULL=1 (the check-dist workflow)
// always rebuilds. The fresh bundle is built in a temporary folder and compared file by file, so
// dist/ stays as committed while it builds (npm test runs the jest suites on dist/ at the same
// time); when they differ, the fresh build replaces dist/ (the check-dist workflow uploads it).
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { stampMatches, walk } from './dist-stamp.mjs'

const uncommitted = () =>
  execFileSync('git', ['status', '--porcelain', '--', 'dist'], { encoding: 'utf8' }).trim()

const placeholders = dir =>
  walk(dir)
    .filter(file => file.endsWith('.js') && readFileSync(file, 'utf8').includes('@@notfound'))
    .map(
      file =>
        `dist/${relative(dir, file)} contains ncc's @@notfound placeholder: a module could not be resolved at build time.`
    )

if (!process.env.CHECK_DIST_FULL && stampMatches('dist')) {
  const problems = placeholders('dist')
  const changed = uncommitted()
  if (changed)
    problems.push(`dist/ is built from src/ but not committed:\n${changed}\nCommit dist/.`)
  if (problems.length) {
    console.error(problems.join('\n'))
    process.exit(1)
  }
  console.log(
    'dist/ is up to date with src/ (its build stamp matches src/ and dist/; CHECK_DIST_FULL=1 rebuilds to compare).'
  )
  process.exit(0)
}

const fresh = mkdtempSync(join(tmpdir(), 'orun-check-dist-'))
try {
  execFileSync(process.execPath, ['scripts/build.mjs', fresh], { stdio: 'inherit' })

  const problems = placeholders(fresh)
  const freshFiles = walk(fresh).map(file => relative(fresh, file))
  const committed = existsSync('dist') ? walk('dist').map(file => relative('dist', file)) : []
  const differing = [...new Set([...freshFiles, ...committed])]
    .sort()
    .filter(
      file =>
        !freshFiles.includes(file) ||
        !committed.includes(file) ||
        !readFileSync(join(fresh, file)).equals(readFileSync(join('dist', file)))
    )
  const changed = uncommitted()
  if (differing.length) {
    rmSync('dist', { recursive: true, force: true })
    cpSync(fresh, 'dist', { recursive: true })
  }
  if (differing.length || changed) {
    const list = differing.length ? differing.map(file => ` M dist/${file}`).join('\n') : changed
    problems.push(
      `dist/ does not match a fresh build of src/:\n${list}\nRun \`npm run build\` and commit dist/.`
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
