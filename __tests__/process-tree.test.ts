/**
 * The process tracker on recorded process tables: macOS through the output of
 * `ps` (__fixtures__/process-table, see its README), Linux through a /proc
 * laid out the same way. The faults suite runs the Linux path on real
 * processes; macOS cannot run here, so its path is checked on what `ps` prints.
 */
import { afterAll, describe, expect, it } from '@jest/globals'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  JobProcessTracker,
  PS_ARGS,
  leftoverProcesses,
  parsePsRows,
  procRows,
  type ProcessRow,
  type ProcessTable
} from '../src/common/process-tree.js'
import { Scratch } from '../testing/scratch.js'

const FIXTURES = resolve(
  fileURLToPath(import.meta.url),
  '..',
  '..',
  '__fixtures__',
  'process-table'
)
const recorded = (name: string) => readFileSync(join(FIXTURES, name), 'utf8')
const scratch = new Scratch([])
afterAll(() => scratch.cleanUp())

/** A table that answers `rows` from a list the test switches as processes come and go. */
function table(self: number, snapshots: ProcessRow[][]): ProcessTable & { next(): void } {
  let index = 0
  return {
    self,
    rows: () => snapshots[index],
    next: () => index++
  }
}

const sorted = (pids: number[]) => [...pids].sort((a, b) => a - b)

describe('macOS: the process table from ps', () => {
  const running = parsePsRows(recorded('ps-macos-running.txt'))
  const afterKill = parsePsRows(recorded('ps-macos-after-kill.txt'))

  it('asks ps for pid, parent and group without a header, and reads its right-aligned columns', () => {
    expect(PS_ARGS).toEqual(['-A', '-o', 'pid=,ppid=,pgid='])
    expect(running).toHaveLength(13)
    expect(running).toContainEqual({ pid: 2052, ppid: 2051, pgid: 2050 })
    expect(running.every(row => row.sid === undefined)).toBe(true)
    // Lines that are not three numbers (a header, an empty line) are no processes.
    expect(parsePsRows('  PID  PPID  PGID\n\n 12 1 12\n 13 x 12\n')).toEqual([
      { pid: 12, ppid: 1, pgid: 12 }
    ])
  })

  it("follows orun's descendants into a group of their own, never into the action's group", () => {
    const ps = table(2001, [running])
    const tracker = new JobProcessTracker(2050, ps)
    expect(tracker.refresh()).toBe(true)
    // No sessions on macOS: the groups carry what the tracker remembers.
    expect(tracker.ids).toEqual({ sessions: [2050], groups: [2050, 2060] })
    expect(tracker.refresh()).toBe(false)
    // 2070 descends from orun but sits in the action's own group: never the job's to stop.
    // 3100/3101 are unrelated; 1 is launchd.
    expect(sorted(tracker.processes())).toEqual([2050, 2051, 2052, 2060, 2061])
  })

  it('finds the daemon a killed action left behind, re-parented to launchd, by its group', () => {
    const main = new JobProcessTracker(2050, table(2001, [running]))
    main.refresh()
    // The post step is a new process (2205) that knows only the ids the main step saved.
    expect(sorted(leftoverProcesses(main.ids, table(2205, [afterKill])))).toEqual([2060, 2061])
  })

  it('still names an orphan after its parent exited, from the group seen while it ran', () => {
    const ps = table(2001, [running, afterKill])
    const tracker = new JobProcessTracker(2050, ps)
    tracker.refresh()
    ps.next()
    expect(sorted(tracker.processes())).toEqual([2060, 2061])
  })
})

describe('Linux: the process table from /proc', () => {
  /** A /proc with one stat file per row (the command names hold spaces and parentheses). */
  function fakeProc(rows: Array<ProcessRow & { sid: number }>): string {
    const dir = scratch.tempDir('orun-fake-proc-')
    for (const row of rows) {
      mkdirSync(join(dir, String(row.pid)))
      writeFileSync(
        join(dir, String(row.pid), 'stat'),
        `${row.pid} (node (worker) ${row.pid}) S ${row.ppid} ${row.pgid} ${row.sid} 0 -1 4194560 0 0\n`
      )
    }
    mkdirSync(join(dir, 'self'))
    return dir
  }

  it('reads parent, group and session after the command name, and tracks by session too', () => {
    const proc = fakeProc([
      { pid: 1, ppid: 0, pgid: 1, sid: 1 },
      { pid: 2001, ppid: 1990, pgid: 1990, sid: 1402 },
      { pid: 2050, ppid: 2001, pgid: 2050, sid: 2050 },
      { pid: 2051, ppid: 2050, pgid: 2051, sid: 2050 },
      // A child that left orun's session and group both.
      { pid: 2060, ppid: 2051, pgid: 2060, sid: 2060 },
      { pid: 3100, ppid: 1, pgid: 3100, sid: 3100 }
    ])
    const rows = procRows(proc)
    expect(rows).toContainEqual({ pid: 2051, ppid: 2050, pgid: 2051, sid: 2050 })
    expect(rows).toHaveLength(6)
    const tracker = new JobProcessTracker(2050, { self: 2001, rows: () => procRows(proc) })
    tracker.refresh()
    expect(tracker.ids).toEqual({ sessions: [2050, 2060], groups: [2050, 2051, 2060] })
    expect(sorted(tracker.processes())).toEqual([2050, 2051, 2060])
  })
})
