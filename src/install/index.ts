// Entry of the bundled root action; run() holds the single catch point (runAction).
import { run } from './main.js'

await run()
