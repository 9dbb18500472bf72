// Fails when the committed dist/ is not what a fresh bundle of src/ produces,
// or when ncc left an unresolved-module placeholder that would only fail at run time.
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' })

const problems = []
const walk = dir =>
  readdirSync(dir).flatMap(name => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? walk(p) : [p]
  })
for (const file of walk('dist').filter(f => f.endsWith('.js'))) {
  if (readFileSync(file, 'utf8').includes('@@notfound')) {
    problems.push(
      `${file} contains ncc's @@notfound placeholder: a module could not be resolved at build time.`
    )
  }
}
const changed = execFileSync('git', ['status', '--porcelain', '--', 'dist'], {
  encoding: 'utf8'
}).trim()
if (changed) {
  problems.push(
    `dist/ does not match a fresh build of src/:\n${changed}\nRun \`npm run build\` and commit dist/.`
  )
}
if (problems.length) {
  console.error(problems.join('\n'))
  process.exit(1)
}
console.log('dist/ is up to date with src/.')
