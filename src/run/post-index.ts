import { runAction } from '../common/errors.js'
import { post } from './post.js'

await runAction(post)
