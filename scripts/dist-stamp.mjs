// The build stamp: a digest of what a build reads (src/, the lockfile, the build scripts) and
// of what it wrote (every file of dist/), kept in dist/.build-stamp.json. When both still
// match, dist/ is the build of these sources, and check-dist can say so without rebuilding
// (a rebuild is about 100 CPU-seconds, taken from the test suites it runs beside). Any change
// to src/ without a build, or to dist/ by hand, breaks the match and check-dist rebuilds to
// compare. The check-dist workflow always rebuilds (CHECK_DIST_FULL=1).
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative, sep } from 'node:path'

export const STAMP_FILE = '.build-stamp.json'

/** What a build reads besides node_modules (which package-lock.json pins under npm ci). */
const INPUT_ROOTS = [
  'src',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'scripts/build.mjs',
  'scripts/dist-stamp.mjs'
]

export const walk = dir =>
  readdirSync(dir).flatMap(name => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? walk(p) : [p]
  })

function digest(root, files) {
  const hash = createHash('sha256')
  for (const file of files.map(f => relative(root, f).split(sep).join('/')).sort())
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(join(root, file)))
      .update('\0')
  return hash.digest('hex')
}

export function inputsDigest(root = '.') {
  const files = INPUT_ROOTS.map(p => join(root, p))
    .filter(p => existsSync(p))
    .flatMap(p => (statSync(p).isDirectory() ? walk(p) : [p]))
  return digest(root, files)
}

export function outputsDigest(dir) {
  return digest(
    dir,
    walk(dir).filter(file => relative(dir, file) !== STAMP_FILE)
  )
}

/** The stamp of the build in dir, of the sources under root. */
export function stampFor(dir, root = '.') {
  return JSON.stringify({ inputs: inputsDigest(root), outputs: outputsDigest(dir) }, null, 2) + '\n'
}

/** True when dir's stamp matches the sources under root and dir's own files. */
export function stampMatches(dir, root = '.') {
  const file = join(dir, STAMP_FILE)
  if (!existsSync(file)) return false
  try {
    const stamp = JSON.parse(readFileSync(file, 'utf8'))
    return stamp.inputs === inputsDigest(root) && stamp.outputs === outputsDigest(dir)
  } catch {
    return false
  }
}
