import * as core from '@actions/core'
import { commandSafe } from './escape.js'

/**
 * A mistake the user can fix (an input, a permission, a plan). Its message is
 * shown as is, without a stack trace, and says what is wrong and how to fix it.
 * Anything else that is thrown is a bug in this action.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UserError'
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** The one catch point of every action entry: user errors fail cleanly, bugs show their stack. */
export async function runAction(main: () => Promise<void>): Promise<void> {
  try {
    await main()
  } catch (error) {
    if (error instanceof UserError) {
      core.setFailed(error.message)
    } else {
      if (error instanceof Error && error.stack) core.info(commandSafe(error.stack))
      core.setFailed(
        `orun action hit an unexpected error: ${errorMessage(error)}. ` +
          'This is a bug; please report it with the log above.'
      )
    }
  }
}
