/** Errors of bundles (export and import). */
import { PullthroughError } from '../errors.ts'

/** The bundle is not one, is cut short, or does not match its own manifest: nothing was imported. */
export class BundleInvalidError extends PullthroughError {
  readonly code = 'PT_BUNDLE_INVALID'
  readonly status = 400
}

/** What was asked for cannot go into a bundle (an unknown registry, a bad reference). */
export class BundleRequestError extends PullthroughError {
  readonly code = 'PT_BUNDLE_REQUEST'
  readonly status = 400
}
