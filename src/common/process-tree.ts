import { spawnSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'

/**
 * Finding and killing every process a job started. orun is started as a
 * session (and process group) leader, but a step can move its children to
 * process groups of their own, and children outlive their parents: killing
 * orun's group alone leaves those behind, holding the output pipes. So the
 * set is: orun's session (Linux), its descendants, and their process groups.
 */

interface ProcessRow {
  pid: number
  ppid: number
  pgid: number
  sid?: number
}

/** Every process, from /proc on Linux, else `ps` (macOS has no /proc). */
function listProcesses(): ProcessRow[] {
  if (process.platform === 'linux') {
    const rows: ProcessRow[] = []
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
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
  const ps = spawnSync('ps', ['-A', '-o', 'pid=,ppid=,pgid='], { encoding: 'utf8' })
  if (ps.status !== 0 || !ps.stdout) return []
  return ps.stdout
    .split('\n')
    .map(line => line.trim().split(/\s+/).map(Number))
    .filter(fields => fields.length === 3 && fields.every(Number.isInteger))
    .map(([pid, ppid, pgid]) => ({ pid, ppid, pgid }))
}

/**
 * The processes that belong to the job led by `leader` (the orun pid): its
 * session, its descendants and every process group they lead or sit in.
 */
export function jobProcesses(leader: number): number[] {
  const rows = listProcesses()
  const members = new Set<number>()
  const groups = new Set<number>([leader])
  for (const row of rows) if (row.sid === leader) members.add(row.pid)
  const children = new Map<number, number[]>()
  for (const row of rows) children.set(row.ppid, [...(children.get(row.ppid) ?? []), row.pid])
  const stack = [leader]
  while (stack.length) {
    const pid = stack.pop()!
    members.add(pid)
    for (const child of children.get(pid) ?? []) if (!members.has(child)) stack.push(child)
  }
  const byPid = new Map(rows.map(row => [row.pid, row]))
  for (const pid of members) {
    const row = byPid.get(pid)
    if (row) groups.add(row.pgid)
  }
  for (const row of rows) if (groups.has(row.pgid)) members.add(row.pid)
  // Never this process, its own group or init, whatever the table says.
  const ownGroup = byPid.get(process.pid)?.pgid
  return [...members].filter(
    pid => pid > 1 && pid !== process.pid && byPid.has(pid) && byPid.get(pid)!.pgid !== ownGroup
  )
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

/**
 * What is left of a job whose leader may be gone (the post step, after the main step was
 * killed): only processes that still carry its id as their session (Linux) or process group,
 * so a pid reused by an unrelated process since is never matched by its number alone.
 */
export function leftoverProcesses(leader: number): number[] {
  const rows = listProcesses()
  const ownGroup = rows.find(row => row.pid === process.pid)?.pgid
  return rows
    .filter(row => (row.sid !== undefined ? row.sid === leader : row.pgid === leader))
    .filter(row => row.pid > 1 && row.pid !== process.pid && row.pgid !== ownGroup)
    .map(row => row.pid)
}
