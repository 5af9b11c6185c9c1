import { describe, expect, it } from "@effect/vitest"
import { LogCapture } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as TestClock from "effect/TestClock"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Cache } from "../src/Cache.js"
import * as CacheMetrics from "../src/CacheMetrics.js"
import * as MemoryCache from "../src/MemoryCache.js"
import * as TypedCache from "../src/TypedCache.js"

class User extends Schema.Class<User>("User")({
  id: Schema.Number,
  name: Schema.NonEmptyString,
  since: Schema.DateFromString
}) {}

const alice = new User({ id: 1, name: "alice", since: new Date("2024-01-02T03:04:05.000Z") })

describe("TypedCache", () => {
  it.effect("round-trips values through the schema (a Date survives JSON)", () =>
    Effect.gen(function*() {
      const users = TypedCache.make(yield* Cache, User)
      yield* users.set("u1", alice)
      const found = yield* users.get("u1")
      expect(Option.isSome(found)).toBe(true)
      const user = Option.getOrThrow(found)
      expect(user).toBeInstanceOf(User)
      expect(user.since.getTime()).toBe(alice.since.getTime())
      yield* users.setMany([["u2", new User({ id: 2, name: "bob", since: new Date(0) })]])
      const many = yield* users.getMany(["u1", "nobody", "u2"])
      expect(many.map(Option.map((u) => u.name))).toEqual([Option.some("alice"), Option.none(), Option.some("bob")])
    }).pipe(Effect.provide(MemoryCache.layer())))

  it.effect("a stored value that does not decode is a miss: counted and logged, never returned", () => {
    const { layer, lines: logs } = LogCapture.make()
    return Effect.gen(function*() {
      const raw = yield* Cache
      const users = TypedCache.make(raw, User)
      yield* raw.set("u1", JSON.stringify({ id: "not-a-number", name: "x", since: "2024-01-01" }))
      yield* raw.set("u2", "{not json")
      const missesBefore = (yield* Metric.value(CacheMetrics.misses)).count
      expect(yield* users.get("u1")).toEqual(Option.none())
      expect(yield* users.get("u2")).toEqual(Option.none())
      const stats = yield* users.stats
      // Two misses for the caller, so two misses in the stats and the metric, not two hits.
      expect(stats).toMatchObject({ decodeErrors: 2, hits: 0, misses: 2 })
      expect((yield* Metric.value(CacheMetrics.misses)).count - missesBefore).toBe(2)
      // Logged at most once a second: the second failure is counted and reported with the next line.
      const decodeLines = () => logs.filter((l) => l.annotations["error_type"] === "decode")
      expect(decodeLines()).toHaveLength(1)
      expect(decodeLines()[0]!.annotations).toMatchObject({ key: "u1", suppressed_since_last_log: 0 })
      yield* TestClock.adjust("1 second")
      expect(yield* users.get("u2")).toEqual(Option.none())
      expect(decodeLines()).toHaveLength(2)
      expect(decodeLines()[1]!.annotations).toMatchObject({ key: "u2", suppressed_since_last_log: 1 })
      // getOrSet recomputes over an undecodable value and replaces it.
      const user = yield* users.getOrSet("u1", Effect.succeed(alice))
      expect(user.name).toBe("alice")
      expect(Option.getOrThrow(yield* users.get("u1")).id).toBe(1)
    }).pipe(Effect.provide(MemoryCache.layer()), Effect.provide(layer))
  })

  it.effect("a value that does not encode fails with PermanentError invalid_argument and stores nothing", () =>
    Effect.gen(function*() {
      const raw = yield* Cache
      const users = TypedCache.make(raw, User)
      const bad = new User({ id: 1, name: "ok", since: new Date(0) })
      ;(bad as unknown as { name: string }).name = ""
      const error = yield* Effect.flip(users.set("u1", bad))
      expect(error).toMatchObject({ _tag: "PermanentError", reason: "invalid_argument", operation: "set" })
      expect(yield* raw.get("u1")).toEqual(Option.none())
    }).pipe(Effect.provide(MemoryCache.layer())))
})

describe("TypedCache.getOrSet", () => {
  it.effect("concurrent misses for one key share one compute", () =>
    Effect.gen(function*() {
      const users = TypedCache.make(yield* Cache, User)
      let calls = 0
      const compute = Effect.sync(() => calls++).pipe(Effect.zipRight(Effect.sleep("10 millis")), Effect.as(alice))
      const fibers = yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.fork(users.getOrSet("u1", compute)))
      yield* TestClock.adjust("10 millis")
      const results = yield* Effect.forEach(fibers, Fiber.join)
      expect(results.every((u) => u.name === "alice")).toBe(true)
      expect(calls).toBe(1)
    }).pipe(Effect.provide(MemoryCache.layer())))
})
