// Fails when the in-process line coverage of src/ is under the floor: at least 85 % of all
// lines, and no file under 60 %. Reads coverage/coverage-summary.json, which jest writes
// with --coverage (json-summary reporter in jest.config.js).
//
//   npm run jest -- --coverage && node scripts/check-coverage.mjs
import { existsSync, readFileSync } from 'node:fs'
import { relative } from 'node:path'

const OVERALL_MIN = 85
const FILE_MIN = 60
const summaryFile = 'coverage/coverage-summary.json'

if (!existsSync(summaryFile)) {
  console.error(`${summaryFile} is missing: run \`npm run jest -- --coverage\` first.`)
  process.exit(1)
}
const summary = JSON.parse(readFileSync(summaryFile, 'utf8'))
const problems = []
const overall = summary.total.lines.pct
if (overall < OVERALL_MIN) {
  problems.push(`src/ overall: ${overall.toFixed(2)} % of lines, under ${OVERALL_MIN} %`)
}
const under = Object.entries(summary)
  .filter(([file]) => file !== 'total')
  .map(([file, figures]) => [relative(process.cwd(), file), figures.lines.pct])
  .filter(([, pct]) => pct < FILE_MIN)
  .sort((a, b) => a[1] - b[1])
for (const [file, pct] of under) {
  problems.push(`${file}: ${pct.toFixed(2)} % of lines, under ${FILE_MIN} %`)
}
if (problems.length) {
  console.error(`Line coverage of src/ is under the floor:\n  ${problems.join('\n  ')}`)
  console.error('Cover these in-process (see CONTRIBUTING.md, "Coverage").')
  process.exit(1)
}
console.log(
  `Line coverage of src/: ${overall.toFixed(2)} % (floor ${OVERALL_MIN} %), every file at least ${FILE_MIN} %.`
)
