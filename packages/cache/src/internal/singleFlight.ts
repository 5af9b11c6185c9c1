/**
 * Single-flight: concurrent runs for one key share one execution. The first caller runs the effect; the others await
 * its result. If the first caller is interrupted, a waiter takes over instead of inheriting the interruption.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"

export const make = () => {
  const inFlight = new Map<string, Deferred.Deferred<unknown, unknown>>()
  const run = <A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      const existing = inFlight.get(key)
      if (existing) {
        return (Deferred.await(existing) as Effect.Effect<A, E>).pipe(
          Effect.catchAllCause((cause) => Cause.isInterruptedOnly(cause) ? run(key, effect) : Effect.failCause(cause))
        )
      }
      return Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const deferred = yield* Deferred.make<unknown, unknown>()
          inFlight.set(key, deferred)
          const exit = yield* Effect.exit(restore(effect))
          inFlight.delete(key)
          yield* Deferred.done(deferred, exit)
          return yield* exit
        })
      )
    })
  return run
}
