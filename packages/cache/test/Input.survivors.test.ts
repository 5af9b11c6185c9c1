/**
 * What a caller sees of invalid arguments (mutation-testing survivors, issue 13): every operation's
 * `PermanentError invalid_argument` names that operation, in its `operation` field and at the start of its message;
 * a TTL that is not a duration, keys that are not an array and entries that are not pairs are refused the same way
 * (not a defect). Also the service tags' keys, which name a missing layer in the error a program dies with.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { Cache } from "../src/Cache.js"
import * as FallbackStore from "../src/FallbackStore.js"
import * as MemoryCache from "../src/MemoryCache.js"

const refusal = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(effect), (e) => {
    const error = e as unknown as { _tag: string; reason: string; operation: string; message: string }
    return { tag: error._tag, reason: error.reason, operation: error.operation, message: error.message }
  })

describe("invalid arguments (survivors)", () => {
  it.effect("each operation's refusal names the operation", () =>
    Effect.gen(function*() {
      const cache = yield* Cache
      const cases = [
        [cache.get(""), "get", "get: the key must not be empty"],
        [cache.getMany(["a", ""]), "getMany", "getMany: the key must not be empty"],
        [cache.set("", "v"), "set", "set: the key must not be empty"],
        [cache.set("k", 1 as unknown as string), "set", "set: the value for key \"k\" must be a string, got number"],
        [cache.set("k", "v", { ttl: 0 }), "set", "set: the TTL must be a positive, finite duration"],
        [cache.setMany([["", "v"]]), "setMany", "setMany: the key must not be empty"],
        [cache.setMany([["k", "v"]], { ttl: "-1 seconds" }), "setMany", "setMany: the TTL must be a positive, finite duration"],
        [cache.delete(""), "delete", "delete: the key must not be empty"]
      ] as const
      for (const [effect, operation, message] of cases) {
        expect(yield* refusal(effect as Effect.Effect<unknown, unknown>)).toEqual({
          tag: "PermanentError",
          reason: "invalid_argument",
          operation,
          message
        })
      }
    }).pipe(Effect.provide(MemoryCache.layer())))

  it.effect("a TTL that is not a duration at all is refused, not a defect", () =>
    Effect.gen(function*() {
      const cache = yield* Cache
      const error = yield* refusal(cache.set("k", "v", { ttl: "banana" as unknown as number }))
      expect(error).toMatchObject({ reason: "invalid_argument", message: "set: the TTL must be a positive, finite duration" })
    }).pipe(Effect.provide(MemoryCache.layer())))

  it.effect("keys that are not an array are refused, not a defect", () =>
    Effect.gen(function*() {
      const cache = yield* Cache
      const error = yield* refusal(cache.getMany("abc" as unknown as ReadonlyArray<string>))
      expect(error).toMatchObject({ reason: "invalid_argument", operation: "getMany", message: "getMany: the keys must be an array" })
    }).pipe(Effect.provide(MemoryCache.layer())))

  it.effect("entries that are not [key, value] pairs are refused, and nothing is stored", () =>
    Effect.gen(function*() {
      const cache = yield* Cache
      for (const bad of [[["k"]], [["k", "v", "x"]], ["kv"], [{ 0: "k", 1: "v", length: 2 }]]) {
        const error = yield* refusal(cache.setMany([["ok", "1"], ...bad] as unknown as Array<readonly [string, string]>))
        expect(error).toMatchObject({
          reason: "invalid_argument",
          operation: "setMany",
          message: "setMany: each entry must be a [key, value] pair"
        })
      }
      expect((yield* cache.stats).memory?.entries).toBe(0)
    }).pipe(Effect.provide(MemoryCache.layer())))

  it.effect("a program without the cache's layers dies naming the missing service", () =>
    Effect.gen(function*() {
      const withoutCache = yield* Effect.exit(Effect.flatMap(Cache, (c) => c.get("k")) as Effect.Effect<unknown>)
      expect(Exit.isFailure(withoutCache) && String(Cause.squash(withoutCache.cause))).toContain("@steadfast/cache/Cache")
      const withoutStore = yield* Effect.exit(FallbackStore.FallbackStore as unknown as Effect.Effect<unknown>)
      expect(Exit.isFailure(withoutStore) && String(Cause.squash(withoutStore.cause))).toContain("@steadfast/cache/FallbackStore")
    }))
})
