/** Thrown out of a wait when the runner is told to stop (SIGINT/SIGTERM). */
export class Cancelled extends Error {}

/** A sleep that ends early, with Cancelled, when the signal aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Cancelled())
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(new Cancelled())
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
