import { PullthroughError } from '../errors.ts'

/** The configuration cannot be used; the message is one line naming the key path and the problem. */
export class ConfigError extends PullthroughError {
  readonly code = 'PT_CONFIG_INVALID'
}
