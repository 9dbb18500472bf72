/**
 * Runs the local coordination server as its own process (for the demo):
 *
 *   npx tsx testing/coordination-server-cli.ts [flags]
 *
 * Prints one JSON line `{"url", "tokenEnv"}` on stdout once listening, then
 * serves until SIGTERM or SIGINT (signal the tsx process itself: npx does not
 * forward signals). Flags (each also readable from the env var
 * in brackets):
 *   --port N                    [ORUN_FAKE_PORT]            default 0 (any free port)
 *   --audience A                [ORUN_FAKE_AUDIENCE]        default orun
 *   --heartbeat-timeout-ms N    [ORUN_FAKE_HEARTBEAT_TIMEOUT_MS] default 300000
 *   --rate-limit BURST:PERSEC   [ORUN_FAKE_RATE_LIMIT]      default 20:5; `off` disables
 *   --token-lifetime-seconds N  [ORUN_FAKE_TOKEN_LIFETIME]  default 300
 *   --session-token T           [ORUN_FAKE_SESSION_TOKENS, comma separated] repeatable
 */
import { parseArgs } from 'node:util'
import { startCoordinationServer, type CoordinationServerOptions } from './coordination-server.js'

function parseNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`${name} must be a non-negative number, got "${value}"`)
  return n
}

function parseRateLimit(value: string | undefined): CoordinationServerOptions['rateLimit'] {
  if (value === undefined || value === '') return undefined
  if (value === 'off' || value === 'false') return false
  const match = /^(\d+):(\d+)$/.exec(value)
  if (!match) throw new Error(`--rate-limit must be BURST:PERSECOND or off, got "${value}"`)
  return { burst: Number(match[1]), perSecond: Number(match[2]) }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      audience: { type: 'string' },
      'heartbeat-timeout-ms': { type: 'string' },
      'rate-limit': { type: 'string' },
      'token-lifetime-seconds': { type: 'string' },
      'session-token': { type: 'string', multiple: true }
    },
    strict: true
  })
  const env = process.env
  const sessionTokens = [
    ...(values['session-token'] ?? []),
    ...(env.ORUN_FAKE_SESSION_TOKENS ?? '').split(',').filter(t => t.length > 0)
  ]
  const server = await startCoordinationServer({
    port: parseNumber('--port', values.port ?? env.ORUN_FAKE_PORT),
    audience: values.audience ?? env.ORUN_FAKE_AUDIENCE,
    heartbeatTimeoutMs: parseNumber(
      '--heartbeat-timeout-ms',
      values['heartbeat-timeout-ms'] ?? env.ORUN_FAKE_HEARTBEAT_TIMEOUT_MS
    ),
    rateLimit: parseRateLimit(values['rate-limit'] ?? env.ORUN_FAKE_RATE_LIMIT),
    tokenLifetimeSeconds: parseNumber(
      '--token-lifetime-seconds',
      values['token-lifetime-seconds'] ?? env.ORUN_FAKE_TOKEN_LIFETIME
    ),
    sessionTokens
  })
  process.stdout.write(`${JSON.stringify({ url: server.url, tokenEnv: server.tokenEnv() })}\n`)

  const stop = (): void => {
    server.close().then(
      () => process.exit(0),
      () => process.exit(1)
    )
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

main().catch(error => {
  process.stderr.write(`coordination server failed to start: ${String(error)}\n`)
  process.exit(1)
})
