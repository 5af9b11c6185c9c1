/**
 * The operations every `Cache` builds the same way from its core ones.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { CacheService } from "../Cache.js"
import * as SingleFlight from "./singleFlight.js"

export type Core<E> = Omit<CacheService<E>, "getOrElse" | "getOrSet">

/** Adds `getOrElse` and a single-flight `getOrSet` (concurrent misses for one key share one `compute`). */
export const derive = <E>(core: Core<E>): CacheService<E> => {
  const singleFlight = SingleFlight.make()
  return {
    ...core,
    getOrElse: (key, orElse) => Effect.map(core.get(key), Option.getOrElse(orElse)),
    getOrSet: (key, compute, options) =>
      Effect.flatMap(core.get(key), (found) =>
        Option.isSome(found)
          ? Effect.succeed(found.value)
          : singleFlight(key, Effect.tap(compute, (value) => core.set(key, value, options))))
  }
}
