import { UserError } from '../common/errors.js'

const loopbackHosts = new Set(['localhost', '127.0.0.1', '[::1]', '::1'])

/**
 * The backend base URL from the input, else ORUN_BACKEND_URL. Tokens travel
 * in its requests, so plain http is accepted only for loopback (local tests).
 */
export function resolveBackendUrl(
  input: string | undefined,
  required: boolean
): string | undefined {
  const raw = (input || process.env.ORUN_BACKEND_URL || '').trim()
  if (!raw) {
    if (!required) return undefined
    throw new UserError(
      "No backend URL: set the 'backend-url' input, or ORUN_BACKEND_URL (e.g. `env: ORUN_BACKEND_URL: ${{ vars.ORUN_BACKEND_URL }}`)."
    )
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new UserError(
      `Input 'backend-url' is not a URL: '${raw}'. Use e.g. https://orun-api.example.workers.dev.`
    )
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopbackHosts.has(url.hostname))) {
    throw new UserError(
      `Input 'backend-url' must be an https:// URL (plain http only for localhost), got '${raw}'.`
    )
  }
  return raw.replace(/\/+$/, '')
}
