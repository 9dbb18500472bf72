import * as core from '@actions/core'
import { parseArgsStringToArgv } from 'string-argv'
import { UserError } from './errors.js'

/** Typed readers for action inputs: every malformed value becomes a UserError naming the input. */

export function getString(name: string, fallback = ''): string {
  return core.getInput(name).trim() || fallback
}

export function getRequired(name: string, hint: string): string {
  const value = core.getInput(name).trim()
  if (!value) throw new UserError(`Input '${name}' is required: ${hint}`)
  return value
}

export function getBoolean(name: string, fallback: boolean): boolean {
  const raw = core.getInput(name).trim()
  if (!raw) return fallback
  if (['true', 'True', 'TRUE'].includes(raw)) return true
  if (['false', 'False', 'FALSE'].includes(raw)) return false
  throw new UserError(`Input '${name}' must be true or false, got '${raw}'.`)
}

/**
 * A whole number written in decimal digits only: Number() would also take 0x10, 1e1, +5,
 * -0, 0.0 and ' ', each a typo or a value from the wrong output.
 */
export function parseWholeNumber(raw: string): number | undefined {
  const text = raw.trim()
  if (!/^\d+$/.test(text)) return undefined
  const value = Number(text)
  return Number.isSafeInteger(value) ? value : undefined
}

/** A comma- or newline-separated list, empty items dropped. */
export function getList(name: string): string[] {
  return core
    .getInput(name)
    .split(/[,\n]/)
    .map(item => item.trim())
    .filter(Boolean)
}

/** Extra CLI flags, split like a shell would split words but never run through one. */
export function getArgs(name: string): string[] {
  const raw = core.getInput(name).trim()
  return raw ? parseArgsStringToArgv(raw) : []
}

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Durations like 30s, 5m, 1h30m, 1500ms, or a bare number of seconds. */
export function parseDuration(raw: string): number | undefined {
  const text = raw.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000)
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)]
  if (!parts.length || parts.map(p => p[0]).join('') !== text) return undefined
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2]], 0))
}

/** The longest delay a Node timer takes; longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1

export interface DurationRange {
  min: string
  max: string
}

/**
 * A duration within range (written as durations, e.g. { min: '1s', max: '2m' }).
 * Without a range it is still capped at what a Node timer can hold (~24.8 days).
 */
export function getDuration(name: string, fallback: string, range?: DurationRange): number {
  const raw = core.getInput(name).trim() || fallback
  const ms = parseDuration(raw)
  if (ms === undefined || ms <= 0) {
    throw new UserError(
      `Input '${name}' must be a positive duration such as 30s, 5m or 1h, got '${raw}'.`
    )
  }
  const min = range ? parseDuration(range.min)! : 1
  const max = Math.min(range ? parseDuration(range.max)! : MAX_TIMER_MS, MAX_TIMER_MS)
  if (ms < min || ms > max) {
    const bounds = range ? `between ${range.min} and ${range.max}` : 'at most 24 days'
    throw new UserError(
      `Input '${name}' must be ${bounds}, got '${raw}'. Use e.g. '${name}: ${fallback}' (the default).`
    )
  }
  return ms
}

export function getChoice<T extends string>(name: string, choices: readonly T[], fallback: T): T {
  const raw = core.getInput(name).trim() || fallback
  if (!(choices as readonly string[]).includes(raw)) {
    throw new UserError(`Input '${name}' must be one of ${choices.join(', ')}, got '${raw}'.`)
  }
  return raw as T
}
