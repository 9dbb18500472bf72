// Runs npm scripts at the same time: `node scripts/side-by-side.mjs typecheck lint 'jest -- --coverage'`.
// npm test uses it where steps do not depend on each other: a CPU-bound step (type check, the
// bundle build of check-dist) then overlaps with one that mostly waits (the jest suites).
// The last script's output streams as it comes; the others' is held and printed whole when each
// ends, so no two outputs interleave. Fails (with the first failure's code) when any fails.
import { spawn } from 'node:child_process'

const scripts = process.argv.slice(2)
if (!scripts.length) {
  console.error('usage: node scripts/side-by-side.mjs <npm script> [<npm script> ...]')
  process.exit(2)
}
const npm = process.env.npm_execpath
const run = (script, live) =>
  new Promise(resolve => {
    const args = ['run', ...script.split(' ')]
    const child = npm
      ? spawn(process.execPath, [npm, ...args], { stdio: live ? 'inherit' : 'pipe' })
      : spawn('npm', args, {
          stdio: live ? 'inherit' : 'pipe',
          shell: process.platform === 'win32'
        })
    const held = []
    child.stdout?.on('data', chunk => held.push(chunk))
    child.stderr?.on('data', chunk => held.push(chunk))
    child.once('error', error => {
      held.push(Buffer.from(`${script}: ${error.message}\n`))
      resolve(1)
    })
    child.once('close', code => {
      if (held.length) process.stdout.write(Buffer.concat(held))
      resolve(code ?? 1)
    })
  })
const codes = await Promise.all(scripts.map((script, i) => run(script, i === scripts.length - 1)))
const failed = codes.findIndex(code => code !== 0)
if (failed >= 0) {
  console.error(`npm run ${scripts[failed]} failed (exit ${codes[failed]}).`)
  process.exit(codes[failed])
}
