import { spawnSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'

/**
 * Finding and killing every process a job started. orun is started as a
 * session (and process group) leader, but a step can move its children to
 * process groups of their own, and children outlive their parents: killing
 * orun's group alone leaves those behind, holding the output pipes. So the
 * set is: orun's session (Linux), its descendants, and their process groups.
 */

export interface ProcessRow {
  pid: number
  ppid: number
  pgid: number
  /** The session id; `ps` on macOS does not give it. */
  sid?: number
}

/** A view of the process table: its rows, and which of them is this process. */
export interface ProcessTable {
  rows(): ProcessRow[]
  self: number
}

/** Rows of /proc (Linux): field 4-6 of /proc/PID/stat after the command name. */
export function procRows(procDir = '/proc'): ProcessRow[] {
  const rows: ProcessRow[] = []
  for (const name of readdirSync(procDir)) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`${procDir}/${name}/stat`, 'utf8')
      // Fields after the command name (which may hold spaces or parentheses): state ppid pgrp session
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      rows.push({
        pid: Number(name),
        ppid: Number(fields[1]),
        pgid: Number(fields[2]),
        sid: Number(fields[3])
      })
    } catch {
      // exited while we looked
    }
  }
  return rows
}

/** The arguments of the `ps` call whose output parsePsRows reads. */
export const PS_ARGS = ['-A', '-o', 'pid=,ppid=,pgid=']

/** Rows of `ps -A -o pid=,ppid=,pgid=` output (macOS has no /proc); lines that are not three numbers are skipped. */
export function parsePsRows(output: string): ProcessRow[] {
  return output
    .split('\n')
    .map(line => line.trim().split(/\s+/).map(Number))
    .filter(fields => fields.length === 3 && fields.every(Number.isInteger))
    .map(([pid, ppid, pgid]) => ({ pid, ppid, pgid }))
}

function psRows(): ProcessRow[] {
  const ps = spawnSync('ps', PS_ARGS, { encoding: 'utf8' })
  if (ps.status !== 0 || !ps.stdout) return []
  return parsePsRows(ps.stdout)
}

/** This machine's process table: /proc on Linux, else `ps`. */
export const systemProcesses: ProcessTable = {
  rows: () => (process.platform === 'linux' ? procRows() : psRows()),
  self: process.pid
}

/** The sessions and process groups a job's processes were seen in. */
export interface ProcessIds {
  sessions: number[]
  groups: number[]
}

/**
 * Follows the processes of one job, led by `leader` (the orun pid), while it runs.
 * A step may start its children in sessions or process groups of their own and exit,
 * leaving them orphans that no longer lead back to orun: so the tracker remembers the
 * session and group ids it has seen, and those still name the orphans later. (An id
 * in use as a session or group id is not handed out as a new pid, so it cannot come
 * to name an unrelated process while a member lives.)
 */
export class JobProcessTracker {
  private readonly sessions = new Set<number>()
  private readonly groups = new Set<number>()

  constructor(
    private readonly leader: number,
    private readonly table: ProcessTable = systemProcesses
  ) {
    this.sessions.add(leader)
    this.groups.add(leader)
  }

  get ids(): ProcessIds {
    return { sessions: [...this.sessions], groups: [...this.groups] }
  }

  /** Looks at the process table; true when the job was seen in a new session or group. */
  refresh(): boolean {
    const before = this.sessions.size + this.groups.size
    const rows = this.table.rows()
    const own = rows.find(row => row.pid === this.table.self)
    for (const pid of members(rows, this.table.self, this.leader, this.ids)) {
      const row = rows.find(r => r.pid === pid)
      if (!row) continue
      if (row.sid !== undefined && row.sid !== own?.sid) this.sessions.add(row.sid)
      if (row.pgid !== own?.pgid) this.groups.add(row.pgid)
    }
    return this.sessions.size + this.groups.size !== before
  }

  /** Every live process of the job. */
  processes(): number[] {
    this.refresh()
    return members(this.table.rows(), this.table.self, this.leader, this.ids)
  }
}

/** What is left of a job after its leader is gone (the post step): by the ids the main step saved. */
export function leftoverProcesses(
  ids: ProcessIds,
  table: ProcessTable = systemProcesses
): number[] {
  return members(table.rows(), table.self, undefined, ids)
}

/** The leader's descendants and everything in the given sessions and groups, and their descendants. */
function members(
  rows: ProcessRow[],
  self: number,
  leader: number | undefined,
  ids: ProcessIds
): number[] {
  const sessions = new Set(ids.sessions)
  const groups = new Set(ids.groups)
  const children = new Map<number, number[]>()
  for (const row of rows) children.set(row.ppid, [...(children.get(row.ppid) ?? []), row.pid])
  const found = new Set<number>()
  const stack = rows
    .filter(row => (row.sid !== undefined && sessions.has(row.sid)) || groups.has(row.pgid))
    .map(row => row.pid)
  if (leader !== undefined) stack.push(leader)
  while (stack.length) {
    const pid = stack.pop()!
    if (found.has(pid)) continue
    found.add(pid)
    stack.push(...(children.get(pid) ?? []))
  }
  // Never this process, its own group or session, or init, whatever the table says.
  const own = rows.find(row => row.pid === self)
  const byPid = new Map(rows.map(row => [row.pid, row]))
  return [...found].filter(pid => {
    const row = byPid.get(pid)
    return (
      row !== undefined &&
      pid > 1 &&
      pid !== self &&
      row.pgid !== own?.pgid &&
      (row.sid === undefined || row.sid !== own?.sid)
    )
  })
}

/** Sends the signal to each pid; returns how many were still there to receive it. */
export function signalProcesses(pids: Iterable<number>, signal: NodeJS.Signals): number {
  let reached = 0
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
      reached++
    } catch {
      // already gone
    }
  }
  return reached
}
