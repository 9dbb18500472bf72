/**
 * Runs the local coordination server as its own process (for the demo):
 *
 *   npx tsx testing/coordination-server-cli.ts [flags]
 *
 * Prints one JSON line `{"url", "build", "tokenEnv"}` on stdout once listening, then
 * serves until SIGTERM or SIGINT (signal the tsx process itself: npx does not
 * forward signals). Flags (each also readable from the env var
 * in brackets):
 *   --build B                   [ORUN_FAKE_BUILD]           2026-05-02 (default) or 2026-05-08
 *   --port N                    [ORUN_FAKE_PORT]            default 0 (any free port)
 *   --audience A                [ORUN_FAKE_AUDIENCE]        default orun
 *   --heartbeat-timeout-ms N    [ORUN_FAKE_HEARTBEAT_TIMEOUT_MS] default 300000
 *   --rate-limit BURST:PERSEC   [ORUN_FAKE_RATE_LIMIT]      default the build's (20:5, 300:30); `off`
 *   --sweep-period-ms N         [ORUN_FAKE_SWEEP_PERIOD_MS] 2026-05-08 alarm period, default 300000
 *   --idle-drop-ms N            [ORUN_FAKE_IDLE_DROP_MS]    2026-05-08 idle time before the drop, 240000
 *   --deletion-delay-ms N       [ORUN_FAKE_DELETION_DELAY_MS] ended run deleted after, default 24 h
 *   --token-lifetime-seconds N  [ORUN_FAKE_TOKEN_LIFETIME]  default 300
 *   --session-token T           [ORUN_FAKE_SESSION_TOKENS, comma separated] repeatable
 */
import { parseArgs } from 'node:util'
import {
  BACKEND_BUILDS,
  isBackendBuild,
  startCoordinationServer,
  type BackendBuild,
  type CoordinationServerOptions
} from './coordination-server.js'

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

function parseBuild(value: string | undefined): BackendBuild | undefined {
  if (value === undefined || value === '') return undefined
  if (!isBackendBuild(value)) {
    throw new Error(`--build must be one of ${BACKEND_BUILDS.join(', ')}, got "${value}"`)
  }
  return value
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      build: { type: 'string' },
      port: { type: 'string' },
      audience: { type: 'string' },
      'heartbeat-timeout-ms': { type: 'string' },
      'rate-limit': { type: 'string' },
      'token-lifetime-seconds': { type: 'string' },
      'sweep-period-ms': { type: 'string' },
      'idle-drop-ms': { type: 'string' },
      'deletion-delay-ms': { type: 'string' },
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
    build: parseBuild(values.build ?? env.ORUN_FAKE_BUILD),
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
    sweepPeriodMs: parseNumber(
      '--sweep-period-ms',
      values['sweep-period-ms'] ?? env.ORUN_FAKE_SWEEP_PERIOD_MS
    ),
    idleDropMs: parseNumber('--idle-drop-ms', values['idle-drop-ms'] ?? env.ORUN_FAKE_IDLE_DROP_MS),
    deletionDelayMs: parseNumber(
      '--deletion-delay-ms',
      values['deletion-delay-ms'] ?? env.ORUN_FAKE_DELETION_DELAY_MS
    ),
    sessionTokens
  })
  const startLine = { url: server.url, build: server.build, tokenEnv: server.tokenEnv() }
  process.stdout.write(`${JSON.stringify(startLine)}\n`)

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
