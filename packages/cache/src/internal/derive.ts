/**
 * The operations every `Cache` builds the same way from its core ones.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { CacheService, SetOptions } from "../Cache.js"

export type Core<E> = Omit<CacheService<E>, "getOrElse" | "getOrSet">

/**
 * Adds `getOrElse` and a single-flight `getOrSet`: concurrent misses for one key in this process share one
 * `compute`. The first caller runs it; the others await its result. If the first caller is interrupted, a waiter
 * takes over instead of inheriting the interruption.
 */
export const derive = <E>(core: Core<E>): CacheService<E> => {
  const inFlight = new Map<string, Deferred.Deferred<string, unknown>>()

  const computeAndStore = <E2, R>(
    key: string,
    compute: Effect.Effect<string, E2, R>,
    options: SetOptions | undefined
  ): Effect.Effect<string, E | E2, R> =>
    Effect.suspend(() => {
      const existing = inFlight.get(key)
      if (existing) {
        return (Deferred.await(existing) as Effect.Effect<string, E | E2>).pipe(
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause) ? computeAndStore(key, compute, options) : Effect.failCause(cause)
          )
        )
      }
      return Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const deferred = yield* Deferred.make<string, unknown>()
          inFlight.set(key, deferred)
          const exit = yield* Effect.exit(restore(Effect.tap(compute, (value) => core.set(key, value, options))))
          inFlight.delete(key)
          yield* Deferred.done(deferred, exit)
          return yield* exit
        })
      )
    })

  return {
    ...core,
    getOrElse: (key, orElse) => Effect.map(core.get(key), Option.getOrElse(orElse)),
    getOrSet: (key, compute, options) =>
      Effect.flatMap(core.get(key), (found) =>
        Option.isSome(found) ? Effect.succeed(found.value) : computeAndStore(key, compute, options))
  }
}
