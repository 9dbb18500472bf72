// Bundles one entry per action into dist/<name>/index.js with a pinned ncc
// ncc type-checks while it bundles.
// GitHub executes dist/, never src/, so this output is committed.
import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'

export const bundles = {
  install: 'src/install/index.ts',
  plan: 'src/plan/index.ts',
  run: 'src/run/index.ts',
  'run-post': 'src/run/post-index.ts',
  status: 'src/status/index.ts',
  validate: 'src/validate/index.ts'
}

rmSync('dist', { recursive: true, force: true })
for (const [name, entry] of Object.entries(bundles)) {
  execFileSync(
    process.execPath,
    [
      'node_modules/@vercel/ncc/dist/ncc/cli.js',
      'build',
      entry,
      '-o',
      `dist/${name}`,
      '--quiet',
      '--license',
      'licenses.txt'
    ],
    { stdio: 'inherit' }
  )
}
