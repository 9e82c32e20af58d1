/**
 * The gate a client request passes before it makes pullthrough ask an
 * upstream: the http layer enters one per request (the client's budget of
 * upstream misses, limits.upstreamMisses), and every upstream request made in
 * that request's async context, a fill it starts included, asks it first.
 * Fills other clients join, and background work (sync lists, refresh-ahead)
 * run outside any request and pass freely.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

export interface UpstreamGate {
  /** Resolves when the request may reach an upstream; rejects (a 429 for the client) when not. */
  admit(): Promise<void>
}

export const upstreamGates = new AsyncLocalStorage<UpstreamGate>()

/** Asks the gate of the current request, if any. */
export async function passUpstreamGate(): Promise<void> {
  await upstreamGates.getStore()?.admit()
}
