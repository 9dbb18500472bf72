/**
 * GitHub refuses a step summary over 1 MiB. Summaries are put together from
 * sections, each with alternatives from the best to the smallest (a picture per
 * job, per environment, a note); fitSections picks the best that fit a budget,
 * shrinking the largest section first; capSummary is the last guard on the final text.
 */
export const GITHUB_SUMMARY_LIMIT_BYTES = 1024 * 1024

const size = (lines: readonly string[]) =>
  lines.reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0)

/** For each section, the index of the alternative chosen so that all of them fit budgetBytes when they can. */
export function fitSections(
  sections: readonly (readonly string[][])[],
  budgetBytes: number
): string[][] {
  const choice = sections.map(() => 0)
  const sizes = sections.map(alternatives => alternatives.map(size))
  let total = sizes.reduce((sum, s, i) => sum + s[choice[i]], 0)
  while (total > budgetBytes) {
    let largest = -1
    for (const [i, s] of sizes.entries())
      if (
        choice[i] < s.length - 1 &&
        (largest < 0 || s[choice[i]] > sizes[largest][choice[largest]])
      )
        largest = i
    if (largest < 0) break
    total -= sizes[largest][choice[largest]]
    choice[largest]++
    total += sizes[largest][choice[largest]]
  }
  return sections.map((alternatives, i) => alternatives[choice[i]])
}

/** The summary within the limit: cut at a line boundary, with a note, when it is over. */
export function capSummary(text: string, limitBytes = GITHUB_SUMMARY_LIMIT_BYTES): string {
  if (Buffer.byteLength(text) <= limitBytes) return text
  const note =
    "\n\n…the rest of this summary was cut: it would exceed GitHub's 1 MiB limit for a step summary. The step's outputs and the job logs hold everything.\n"
  const budget = limitBytes - Buffer.byteLength(note)
  const kept = Buffer.from(text)
    .subarray(0, budget)
    .toString('utf8')
    .replace(/\uFFFD+$/, '')
  const lineEnd = kept.lastIndexOf('\n')
  return (lineEnd > 0 ? kept.slice(0, lineEnd) : kept) + note
}
