import { maskCommandData } from './redact.js'

/**
 * Passes orun's output on to the runner's log so that the job's own `::add-mask::` reaches
 * GitHub. In GitHub Actions mode orun prints each step's output in one piece, after the
 * step, inside `::stop-commands::<token>` … `::<token>::`, so the runner ignores the
 * step's commands, `::add-mask::` among them, and shows the value in clear. The relay
 * holds such a block until it ends (up to a bound: orun buffers the step anyway), then
 * prints an `::add-mask::` of its own for each value masked in it, outside and before the
 * block, so GitHub masks the value in the block and wherever it is printed again. A block
 * over the bound is passed on as it comes and its masks printed right after it ends.
 */
export const MAX_HELD_BLOCK_BYTES = 1024 * 1024
const STOP_COMMANDS = /^::stop-commands::(.+)$/

export class MaskRelay {
  /** The current line, not yet ended. */
  private line = ''
  /** How much of `line` was passed on already (outside a block, text is not held back). */
  private linePassed = 0
  private token?: string
  private held: string[] = []
  private heldBytes = 0
  private holding = false
  private masks: string[] = []
  private readonly relayed = new Set<string>()

  constructor(
    private readonly write: (text: string) => void,
    /** orun's own lines (outside every block), for its account of the run. */
    private readonly onOwnLine: (line: string) => void = () => {},
    private readonly maxHeldBytes = MAX_HELD_BLOCK_BYTES
  ) {}

  push(chunk: string): void {
    let start = 0
    for (let end = chunk.indexOf('\n'); end >= 0; end = chunk.indexOf('\n', start)) {
      this.line += chunk.slice(start, end + 1)
      this.endLine()
      start = end + 1
    }
    this.line += chunk.slice(start)
    // Outside a block an unended line is passed on at once, unless it may open a block.
    if (this.token === undefined && !mayOpenBlock(this.line)) {
      this.write(this.line.slice(this.linePassed))
      this.linePassed = this.line.length
    }
  }

  /**
   * orun exited: passes on whatever is held, its masks first. A block orun left open (it
   * was killed) is closed, or the runner would ignore every later command of the job.
   */
  end(): void {
    const unended = this.line.slice(this.linePassed)
    this.line = ''
    this.linePassed = 0
    if (this.token !== undefined) {
      this.emit(`${unended}${unended ? '\n' : ''}::${this.token}::\n`)
      this.token = undefined
    } else if (unended) this.write(unended)
    this.release()
  }

  private endLine(): void {
    const line = this.line
    const rest = line.slice(this.linePassed)
    this.line = ''
    this.linePassed = 0
    const trimmed = line.trim()
    if (this.token === undefined) {
      const open = STOP_COMMANDS.exec(trimmed)
      if (open) {
        this.token = open[1]
        this.holding = true
        this.emit(rest)
        return
      }
      this.write(rest)
      this.onOwnLine(trimmed)
      return
    }
    if (trimmed === `::${this.token}::`) {
      this.token = undefined
      this.emit(rest)
      this.release()
      return
    }
    for (const data of maskCommandData(line)) this.masks.push(data)
    this.emit(rest)
  }

  /** Held while a block is held (up to the bound), else written. */
  private emit(text: string): void {
    if (!text) return
    if (!this.holding) return this.write(text)
    this.held.push(text)
    this.heldBytes += Buffer.byteLength(text)
    if (this.heldBytes > this.maxHeldBytes) {
      // Too big to hold: pass it on; its masks follow the block's end.
      this.holding = false
      this.writeHeld()
    }
  }

  /**
   * The block ended (or orun did): its masks, then the block when it was held. A block
   * passed on already was closed before this, so the masks land outside it.
   */
  private release(): void {
    const fresh = this.masks.filter(data => !this.relayed.has(data))
    this.masks = []
    for (const data of fresh) this.relayed.add(data)
    const text = fresh.map(data => `::add-mask::${data}\n`).join('') + this.held.join('')
    this.held = []
    this.heldBytes = 0
    this.holding = false
    if (text) this.write(text)
  }

  private writeHeld(): void {
    if (this.held.length) this.write(this.held.join(''))
    this.held = []
    this.heldBytes = 0
  }
}

/** An unended line that may yet turn out to be `::stop-commands::…`. */
function mayOpenBlock(line: string): boolean {
  const start = line.trimStart()
  return start.startsWith('::stop-commands::') || '::stop-commands::'.startsWith(start)
}
