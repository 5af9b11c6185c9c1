import { describe, expect, it } from "@effect/vitest"
import { LogCapture } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Cache } from "../src/Cache.js"
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
      expect(yield* users.get("u1")).toEqual(Option.none())
      expect(yield* users.get("u2")).toEqual(Option.none())
      expect((yield* users.stats).decodeErrors).toBe(2)
      const warnings = logs.filter((l) => l.annotations["error_type"] === "decode")
      expect(warnings).toHaveLength(2)
      expect(warnings[0]!.annotations["key"]).toBe("u1")
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
