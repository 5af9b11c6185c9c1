/**
 * The public face every cache shares: validate the input, then call the implementation's unchecked operations,
 * then derive `getOrElse` and `getOrSet`. A bad key or TTL fails with `PermanentError` (`invalid_argument`) before
 * anything else happens.
 *
 * @internal
 */
import { PermanentError } from "@steadfast/resilience"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { CacheService, Health, Stats } from "../Cache.js"
import { derive } from "./derive.js"
import { checkEntries, checkKey, checkKeys, checkValue, parseTtl } from "./input.js"

export interface Unchecked<E> {
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, E>
  readonly getMany: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Option.Option<string>>, E>
  readonly set: (key: string, value: string, ttl: Option.Option<Duration.Duration>) => Effect.Effect<void, E>
  readonly setMany: (
    entries: ReadonlyArray<readonly [string, string]>,
    ttl: Option.Option<Duration.Duration>
  ) => Effect.Effect<void, E>
  readonly delete: (key: string) => Effect.Effect<boolean, E>
  readonly health: Effect.Effect<Health>
  readonly stats: Effect.Effect<Stats>
}

export const checked = <E>(ops: Unchecked<E>): CacheService<E | PermanentError> =>
  derive<E | PermanentError>({
    get: (key) => {
      const bad = checkKey("get", key)
      return bad ? Effect.fail(bad) : ops.get(key)
    },
    getMany: (keys) => {
      const bad = checkKeys("getMany", keys)
      return bad ? Effect.fail(bad) : ops.getMany(keys)
    },
    set: (key, value, options) => {
      const bad = checkKey("set", key) ?? checkValue("set", key, value)
      if (bad) return Effect.fail(bad)
      const ttl = parseTtl("set", options?.ttl)
      return Option.isOption(ttl) ? ops.set(key, value, ttl) : Effect.fail(ttl)
    },
    setMany: (entries, options) => {
      const list = checkEntries("setMany", entries)
      if (list instanceof PermanentError) return Effect.fail(list)
      const ttl = parseTtl("setMany", options?.ttl)
      return Option.isOption(ttl) ? ops.setMany(list, ttl) : Effect.fail(ttl)
    },
    delete: (key) => {
      const bad = checkKey("delete", key)
      return bad ? Effect.fail(bad) : ops.delete(key)
    },
    health: ops.health,
    stats: ops.stats
  })
