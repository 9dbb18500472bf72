import { jest } from '@jest/globals'

/**
 * @actions/core writes workflow commands (::add-mask:: for every minted token,
 * ::debug::) to stdout; in-process tests drop them to keep the output readable.
 */
export function silenceWorkflowCommands(): void {
  const write = process.stdout.write.bind(process.stdout)
  jest
    .spyOn(process.stdout, 'write')
    .mockImplementation(((chunk: string | Uint8Array) =>
      String(chunk).startsWith('::') ? true : write(chunk)) as typeof process.stdout.write)
}
