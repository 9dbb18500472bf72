import { runAction } from '../common/errors.js'
import { run } from './main.js'

await runAction(run)
