/**
 * The hybrid cache's getOrSet factory control (`internal/factory.ts`): what no other test pinned down (found by
 * mutation testing). Option messages; under TestClock over a small scripted backend, eager refresh at and below its
 * fraction and a soft timeout longer than the hard one; on the shared Redis, the typed timeout error (its tag and
 * message) and the `failed` event.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Factory from "../src/internal/factory.js"
import type * as HybridCache from "../src/HybridCache.js"
import { cleanup, hybrid, hybridStats, REDIS_URL, unique } from "./hybrid.utils.js"

/** A backend whose L1 answers `hit` (when set) and whose L2 answers `lookup`; it records what happens. */
const backend = (state: { hit?: { value: string; age: number }; lookup: Factory.Lookup }) => {
  const log = { events: [] as Array<string>, stale: [] as Array<string>, stored: [] as Array<string> }
  const b: Factory.Backend = {
    hit: () => state.hit,
    lookup: () => Effect.succeed(state.lookup),
    store: (_key, value) => Effect.sync(() => void log.stored.push(value)),
    servedStale: (reason) => void log.stale.push(reason),
    event: (name) => void log.events.push(name)
  }
  return { b, log }
}

describe("factory options (survivors)", () => {
  it("messages name the option; eagerRefresh excludes 0", () => {
    expect(() => Factory.resolve({ eagerRefresh: 0 })).toThrow("eagerRefresh must be in (0, 1), got 0")
    expect(() => Factory.resolve({ hardTimeout: "0 millis" })).toThrow("hardTimeout must be a positive, finite duration")
  })
})

describe("factory control under TestClock (survivors)", () => {
  it.scoped("eager refresh: a hit below the fraction refreshes nothing, a hit at exactly the fraction refreshes", () =>
    Effect.gen(function*() {
      const state: { hit?: { value: string; age: number }; lookup: Factory.Lookup } = {
        hit: { value: "v1", age: 0.79 },
        lookup: { _tag: "Miss" }
      }
      const { b, log } = backend(state)
      const control = Factory.make(b, yield* Effect.scope)
      let runs = 0
      const compute = Effect.suspend(() => (runs++, Effect.as(Effect.sleep("100 millis"), "v2")))
      const options = { eagerRefresh: 0.8 }
      expect(yield* control.getOrSet("k", compute, options, Factory.resolve(options))).toBe("v1")
      yield* TestClock.adjust("100 millis")
      expect(runs).toBe(0)
      expect(log.events).toEqual([])
      state.hit = { value: "v1", age: 0.8 }
      expect(yield* control.getOrSet("k", compute, options, Factory.resolve(options))).toBe("v1")
      yield* TestClock.adjust("100 millis")
      expect(runs).toBe(1)
      expect(log.events).toEqual(["eager_refresh", "completed"])
      expect(log.stored).toEqual(["v2"])
    }))

  it.scoped("a soft timeout longer than the hard one: the hard timeout answers the stale value", () =>
    Effect.gen(function*() {
      const { b, log } = backend({ lookup: { _tag: "Stale", value: "old" } })
      const control = Factory.make(b, yield* Effect.scope)
      const options = { softTimeout: "500 millis", hardTimeout: "200 millis" } as const
      const caller = yield* Effect.fork(
        control.getOrSet("k", Effect.as(Effect.sleep("1 second"), "new"), options, Factory.resolve(options))
      )
      yield* TestClock.adjust("200 millis")
      yield* Effect.yieldNow()
      expect(Option.isSome(yield* Fiber.poll(caller))).toBe(true)
      expect(yield* Fiber.join(caller)).toBe("old")
      expect(log.stale).toEqual(["hard_timeout"])
      expect(log.events).toEqual(["hard_timeout"])
    }))
})

describe("factory control on the shared Redis (survivors)", () => {
  it.live("the hard timeout fails with a FactoryTimeoutError (catchable by its tag, its message naming key and time); a failed factory is counted", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("factory")
      yield* cleanup(keyPrefix)
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix })
      const hybridCache = cache as HybridCache.HybridCache // the layer provides the same object as both services
      const caught = yield* hybridCache.getOrSetWith("slow", Effect.as(Effect.sleep("300 millis"), "x"), { hardTimeout: "50 millis" }).pipe(
        Effect.catchTag("FactoryTimeoutError", (error) => Effect.succeed(`caught: ${error.message}`))
      )
      expect(caught).toBe(`caught: getOrSet factory for "slow" did not finish within 50 ms`)
      expect(yield* Effect.flip(hybridCache.getOrSetWith("broken", Effect.fail("db down")))).toBe("db down")
      expect((yield* hybridStats(cache)).factory).toMatchObject({ failed: 1, hard_timeout: 1 })
    })))
})
