/**
 * A typed stand-in for @actions/core, for in-process tests of each action's run()
 * (model: actions/typescript-action __fixtures__/core.ts). Tests register it with
 * `jest.unstable_mockModule('@actions/core', () => core)` before importing the action, set
 * `inputs`, then read `outputs`, `state`, `summaryText` and the jest.fn calls.
 *
 * getIDToken asks ACTIONS_ID_TOKEN_REQUEST_URL the way @actions/core does, so the local
 * coordination server's issuer (testing/coordination-server.ts) mints the tokens.
 */
import { jest } from '@jest/globals'
import type * as core from '@actions/core'

/** Action inputs by name, as the workflow's `with:` would give them. */
export const inputs: Record<string, string> = {}
/** What the action set with setOutput. */
export const outputs: Record<string, string> = {}
/** What the action saved with saveState (read back by getState, e.g. in the post step). */
export const state: Record<string, string> = {}
/** Everything written to the job summary. */
export let summaryText = ''

export const getInput = jest.fn<typeof core.getInput>((name, options) => {
  const value = inputs[name] ?? ''
  if (options?.required && !value) throw new Error(`Input required and not supplied: ${name}`)
  return options?.trimWhitespace === false ? value : value.trim()
})
export const setOutput = jest.fn<typeof core.setOutput>((name, value) => {
  outputs[name] = typeof value === 'string' ? value : JSON.stringify(value)
})
export const saveState = jest.fn<typeof core.saveState>((name, value) => {
  state[name] = typeof value === 'string' ? value : JSON.stringify(value)
})
export const getState = jest.fn<typeof core.getState>(name => state[name] ?? '')
export const setFailed = jest.fn<typeof core.setFailed>()
export const setSecret = jest.fn<typeof core.setSecret>()
export const addPath = jest.fn<typeof core.addPath>()
export const debug = jest.fn<typeof core.debug>()
export const info = jest.fn<typeof core.info>()
export const notice = jest.fn<typeof core.notice>()
export const warning = jest.fn<typeof core.warning>()
export const error = jest.fn<typeof core.error>()
export const startGroup = jest.fn<typeof core.startGroup>()
export const endGroup = jest.fn<typeof core.endGroup>()
export const group = jest.fn(async <T>(_name: string, fn: () => Promise<T>): Promise<T> => fn())
export const isDebug = jest.fn<typeof core.isDebug>(() => false)

export const getIDToken = jest.fn<typeof core.getIDToken>(async audience => {
  const url = process.env.ACTIONS_ID_TOKEN_REQUEST_URL
  const token = process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN
  if (!url || !token) throw new Error('Unable to get ACTIONS_ID_TOKEN_REQUEST_URL env variable')
  const full = audience ? `${url}&audience=${encodeURIComponent(audience)}` : url
  const response = await fetch(full, { headers: { Authorization: `Bearer ${token}` } })
  if (!response.ok) throw new Error(`Failed to get ID Token: ${response.status}`)
  const { value } = (await response.json()) as { value: string }
  return value
})

/** The part of core.summary the actions use: text is appended, write() keeps it. */
export const summary = {
  buffer: '',
  addRaw(text: string, addEOL = false) {
    this.buffer += addEOL ? `${text}\n` : text
    return this
  },
  addEOL() {
    this.buffer += '\n'
    return this
  },
  async write() {
    summaryText += this.buffer
    this.buffer = ''
    return this
  },
  emptyBuffer() {
    this.buffer = ''
    return this
  }
}

/** Lines the action logged with info/notice/warning/error, in order per kind. */
export const logged = (fn: typeof info | typeof warning | typeof notice | typeof error): string[] =>
  fn.mock.calls.map(call => String(call[0]))

/** A clean slate between tests. */
export function reset(): void {
  for (const record of [inputs, outputs, state]) {
    for (const key of Object.keys(record)) delete record[key]
  }
  summaryText = ''
  summary.buffer = ''
  jest.clearAllMocks()
}
