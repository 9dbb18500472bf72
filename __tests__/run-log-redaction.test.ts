/**
 * The stored log is redacted before it is capped: a cap that cuts through a secret
 * must not leave the secret's end in the uploaded text. Written against the public
 * behaviour of LogStream (what it uploads) and capLog, so it holds whatever the
 * internals look like.
 */
import { describe, expect, it } from '@jest/globals'
import { LogStream, capLog } from '../src/run/logstream.js'
import { REDACTED, Redactor } from '../src/run/redact.js'

// 64 distinctive characters; any 12 of them in a row would be a leak.
const SECRET = 'tok-9f8e7d6c5b4a39281706f5e4d3c2b1a0-QWERTYUIOPASDFGHJKLZXCVBNM'

/** 1,000 bytes, the secret, then `after` bytes: a cap of `maxBytes` keeps only the end. */
function logAround(after: number): string {
  return `${'a'.repeat(999)}\n${SECRET}${'b'.repeat(after - 1)}\n`
}

async function uploadedBy(text: string, maxBytes: number): Promise<string> {
  const texts: string[] = []
  const stream = new LogStream({
    upload: async uploaded => {
      texts.push(uploaded)
      return { logRef: 'ns/runs/r/logs/j.log' }
    },
    redactor: new Redactor([SECRET]),
    intervalMs: 60_000,
    maxBytes,
    warn: () => {}
  })
  stream.append(text)
  await stream.flush(true)
  expect(texts).toHaveLength(1)
  return texts[0]
}

describe('the uploaded log is redacted, then capped', () => {
  it('a secret the cap cuts in half leaves no piece of itself', async () => {
    const maxBytes = 300
    // Where the cut falls in the raw text: inside the secret.
    const rawKept = capLog(logAround(120), maxBytes)
    expect(rawKept).toContain(SECRET.slice(-20))
    expect(rawKept).not.toContain(SECRET)

    const uploaded = await uploadedBy(logAround(120), maxBytes)

    for (let start = 0; start + 12 <= SECRET.length; start++) {
      expect(uploaded).not.toContain(SECRET.slice(start, start + 12))
    }
    expect(uploaded).toContain(`${REDACTED}${'b'.repeat(119)}\n`)
    expect(Buffer.byteLength(uploaded)).toBeLessThanOrEqual(maxBytes)
  })

  it('the cap applies to the redacted text: a log that fits once redacted is not cut', async () => {
    // 1,000 a's + secret + 20 b's is over 1,050 bytes raw, under it once the secret is a marker.
    const text = logAround(20)
    expect(Buffer.byteLength(text)).toBeGreaterThan(1_050)
    const uploaded = await uploadedBy(text, 1_050)
    expect(uploaded).toBe(`${'a'.repeat(999)}\n${REDACTED}${'b'.repeat(19)}\n`)
  })
})
