// Bundles one entry per action into dist/<name>/index.js with a pinned ncc
// ncc type-checks while it bundles. `node scripts/build.mjs <dir>` builds into <dir> instead
// (check-dist builds beside dist/, so the tests can run on dist/ meanwhile).
// GitHub executes dist/, never src/, so this output is committed.
// The bundles are independent, so they are built side by side, one per core: each ncc
// process is single-threaded and most of its time is its own type check.
import { spawn } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { STAMP_FILE, stampFor } from './dist-stamp.mjs'

export const bundles = {
  install: 'src/install/index.ts',
  plan: 'src/plan/index.ts',
  run: 'src/run/index.ts',
  'run-post': 'src/run/post-index.ts',
  status: 'src/status/index.ts',
  validate: 'src/validate/index.ts'
}

function build(name, entry) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        'node_modules/@vercel/ncc/dist/ncc/cli.js',
        'build',
        entry,
        '-o',
        `${outRoot}/${name}`,
        '--quiet',
        // ncc's build cache (a folder in the system temp, shared by every build) lets a build
        // restore modules without their licenses: a warm cache dropped one package's licence
        // from dist/plan/licenses.txt, and check-dist failed. Built from scratch, dist/ is the
        // same wherever it is built.
        '--no-cache',
        '--license',
        'licenses.txt'
      ],
      { stdio: 'inherit' }
    )
    child.once('error', reject)
    child.once('close', code =>
      code === 0 ? resolve() : reject(new Error(`ncc build of ${entry} exited with ${code}`))
    )
  })
}

const outRoot = process.argv[2] ?? 'dist'
rmSync(outRoot, { recursive: true, force: true })
const queue = Object.entries(bundles)
const builders = Array.from(
  { length: Math.min(availableParallelism(), queue.length) },
  async () => {
    for (let next = queue.shift(); next; next = queue.shift()) await build(...next)
  }
)
try {
  await Promise.all(builders)
  // What this build read and wrote, for check-dist (scripts/dist-stamp.mjs).
  writeFileSync(join(outRoot, STAMP_FILE), stampFor(outRoot))
} catch (error) {
  console.error(error.message)
  process.exit(1)
}
