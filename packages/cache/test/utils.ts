import type { RedisConnection } from "@steadfast/redis"
import { ScriptedConnection } from "@steadfast/redis"
import { Retry } from "@steadfast/resilience"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Cache } from "../src/Cache.js"
import * as ResilientCache from "../src/ResilientCache.js"

/** Polls `check` every 50 ms until it returns true, for at most `timeoutMs` (a real socket needs real time). */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (yield* check) return true
      yield* Effect.sleep("50 millis")
    }
    return yield* check
  })

/**
 * A resilient cache (key prefix `t:`, breaker 3 failures / 1 s, reconciliation every 100 ms) over a scripted
 * connection (500 ms deadline), for decision tests under `TestClock`. Reads fail at once (no backoff to sleep through
 * on the test clock) unless `options` says otherwise.
 */
export const scriptedResilient = (
  options: ResilientCache.Options = {}
): Layer.Layer<Cache | RedisConnection.RedisConnection | ScriptedConnection.ScriptedConnection> =>
  ResilientCache.layer({
    keyPrefix: "t:",
    retry: { get: Retry.none, getMany: Retry.none },
    breaker: { failureThreshold: 3, halfOpenAfter: "1 second" },
    reconcile: { retryEvery: "100 millis" },
    ...options
  }).pipe(Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis" })))

/** Lets forked fibers (a reconciler, a tuning watcher) run: a few scheduler turns on the test clock. */
export const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
})
