/**
 * TypedCache behaviours the first tests left open (mutation-testing survivors, issue 13): the stats a caller reads
 * after real hits, `getOrElse`, the batch forms' decode and encode failures (which key, which operation), and the
 * `logInterval` option of the decode-failure log.
 */
import { describe, expect, it } from "@effect/vitest"
import { LogCapture } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import { Cache } from "../src/Cache.js"
import * as MemoryCache from "../src/MemoryCache.js"
import * as TypedCache from "../src/TypedCache.js"

const Point = Schema.Struct({ x: Schema.Number, y: Schema.Number })

describe("TypedCache (survivors)", () => {
  it.effect("stats: hits and misses as the caller saw them, a decode failure moved from hits to misses", () =>
    Effect.gen(function*() {
      const raw = yield* Cache
      const points = TypedCache.make(raw, Point)
      yield* points.set("a", { x: 1, y: 2 })
      yield* points.set("b", { x: 3, y: 4 })
      yield* raw.set("bad", "{\"x\":\"one\"}")
      expect(yield* points.get("a")).toEqual(Option.some({ x: 1, y: 2 }))
      expect(yield* points.get("b")).toEqual(Option.some({ x: 3, y: 4 }))
      expect(yield* points.get("a")).toEqual(Option.some({ x: 1, y: 2 }))
      expect(yield* points.get("nothing")).toEqual(Option.none())
      expect(yield* points.get("bad")).toEqual(Option.none())
      // The string cache saw 4 hits and 1 miss; one of its hits did not decode.
      expect(yield* points.stats).toMatchObject({ hits: 3, misses: 2, decodeErrors: 1 })
    }).pipe(Effect.provide(MemoryCache.layer())))

  it.effect("getOrElse: the decoded value when there is one, the default on a miss or a value that does not decode", () =>
    Effect.gen(function*() {
      const raw = yield* Cache
      const points = TypedCache.make(raw, Point)
      yield* points.set("a", { x: 1, y: 2 })
      yield* raw.set("bad", "not json")
      expect(yield* points.getOrElse("a", () => ({ x: 0, y: 0 }))).toEqual({ x: 1, y: 2 })
      expect(yield* points.getOrElse("none", () => ({ x: 0, y: 0 }))).toEqual({ x: 0, y: 0 })
      expect(yield* points.getOrElse("bad", () => ({ x: 9, y: 9 }))).toEqual({ x: 9, y: 9 })
      // getOrElse stores nothing.
      expect(yield* raw.get("none")).toEqual(Option.none())
    }).pipe(Effect.provide(MemoryCache.layer())))

  it.effect("getMany: a value that does not decode is a miss at its own position, logged with its own key", () => {
    const { layer, lines } = LogCapture.make()
    return Effect.gen(function*() {
      const raw = yield* Cache
      const points = TypedCache.make(raw, Point)
      yield* points.set("a", { x: 1, y: 2 })
      yield* raw.set("bad", "[1,2]")
      expect(yield* points.getMany(["a", "bad", "none"])).toEqual([Option.some({ x: 1, y: 2 }), Option.none(), Option.none()])
      const decode = lines.filter((l) => l.annotations["error_type"] === "decode")
      expect(decode).toHaveLength(1)
      expect(decode[0]!.level).toBe("WARN")
      expect(decode[0]!.message).toBe("cached value does not decode; treated as a miss")
      expect(decode[0]!.annotations).toMatchObject({ operation: "decode", key: "bad", suppressed_since_last_log: 0 })
      expect(String(decode[0]!.annotations["error_message"])).toContain("Expected")
    }).pipe(Effect.provide(MemoryCache.layer()), Effect.provide(layer))
  })

  it.effect("setMany: a value that does not encode fails the whole call naming setMany and the key; nothing is stored", () =>
    Effect.gen(function*() {
      const raw = yield* Cache
      const points = TypedCache.make(raw, Point)
      const error = yield* Effect.flip(points.setMany([["ok", { x: 1, y: 1 }], ["nan", { x: 1, y: "no" as unknown as number }]]))
      expect(error).toMatchObject({ _tag: "PermanentError", reason: "invalid_argument", operation: "setMany" })
      expect(error.message).toMatch(/^setMany: the value for key "nan" does not encode: /)
      expect(yield* raw.get("ok")).toEqual(Option.none())
      const setError = yield* Effect.flip(points.set("k", { x: "no" as unknown as number, y: 1 }))
      expect(setError.message).toMatch(/^set: the value for key "k" does not encode: /)
    }).pipe(Effect.provide(MemoryCache.layer())))

  it.effect("logInterval: decode failures are logged at most once per interval, the others counted in the next line", () => {
    const { layer, lines } = LogCapture.make()
    return Effect.gen(function*() {
      const raw = yield* Cache
      const points = TypedCache.make(raw, Point, { logInterval: "5 seconds" })
      // Not at the clock's origin: the interval is measured from the last line's instant.
      yield* TestClock.adjust("100 seconds")
      yield* raw.set("bad", "{")
      const decodeLines = () => lines.filter((l) => l.annotations["error_type"] === "decode")
      yield* points.get("bad")
      expect(decodeLines()).toHaveLength(1)
      yield* TestClock.adjust("1 second")
      yield* points.get("bad")
      yield* TestClock.adjust("3 seconds")
      yield* points.get("bad")
      // 4 s after the first line: still within the interval.
      expect(decodeLines()).toHaveLength(1)
      yield* TestClock.adjust("1 second")
      yield* points.get("bad")
      expect(decodeLines()).toHaveLength(2)
      expect(decodeLines()[1]!.annotations).toMatchObject({ suppressed_since_last_log: 2 })
      // The count starts again after a line.
      yield* TestClock.adjust("5 seconds")
      yield* points.get("bad")
      expect(decodeLines()[2]!.annotations).toMatchObject({ suppressed_since_last_log: 0 })
    }).pipe(Effect.provide(MemoryCache.layer()), Effect.provide(layer))
  })

  it.effect("getOrSet: a found value is returned without computing; a computed one is stored with the given TTL", () =>
    Effect.gen(function*() {
      const raw = yield* Cache
      const points = TypedCache.make(raw, Point)
      yield* points.set("a", { x: 1, y: 2 })
      let computed = 0
      const compute = Effect.sync(() => (computed++, { x: 5, y: 5 }))
      expect(yield* points.getOrSet("a", compute)).toEqual({ x: 1, y: 2 })
      expect(computed).toBe(0)
      expect(yield* points.getOrSet("b", compute, { ttl: "10 seconds" })).toEqual({ x: 5, y: 5 })
      expect(computed).toBe(1)
      expect(yield* raw.get("b")).toEqual(Option.some("{\"x\":5,\"y\":5}"))
      yield* TestClock.adjust("10 seconds")
      expect(yield* raw.get("b")).toEqual(Option.none())
    }).pipe(Effect.provide(MemoryCache.layer())))

  it.effect("delete goes to the cache below and answers whether a value was there", () =>
    Effect.gen(function*() {
      const raw = yield* Cache
      const points = TypedCache.make(raw, Point)
      yield* points.set("a", { x: 1, y: 2 })
      expect(yield* points.delete("a")).toBe(true)
      expect(yield* points.delete("a")).toBe(false)
      expect(yield* raw.get("a")).toEqual(Option.none())
    }).pipe(Effect.provide(MemoryCache.layer())))
})
