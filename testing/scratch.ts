import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * What an in-process suite borrows from the test process: the environment
 * variables its run() calls read (saved now, put back by cleanUp) and the
 * temporary directories it makes (removed by cleanUp).
 */
export class Scratch {
  private readonly saved: Record<string, string | undefined>
  private readonly dirs: string[] = []

  constructor(envKeys: readonly string[]) {
    this.saved = Object.fromEntries(envKeys.map(key => [key, process.env[key]]))
  }

  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix))
    this.dirs.push(dir)
    return dir
  }

  cleanUp(): void {
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
    for (const [key, value] of Object.entries(this.saved)) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  }
}
