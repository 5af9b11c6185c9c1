/**
 * The connection's shared deadline sweeper (internal/deadlines.ts) under `TestClock`: a call expires within
 * `[timeout - 2 ticks, timeout - tick]`, and a timeout changed while calls are in flight applies to the calls started
 * after it, whichever way it moves.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Deadlines from "../src/internal/deadlines.js"

const never = () => new Promise<never>(() => {})
/** A call that never settles, failing with the time its deadline fired at. */
const call = (deadlines: Deadlines.Deadlines) =>
  Effect.tap(
    Effect.fork(Effect.flip(deadlines.run(never, () => "error" as const, () => "timeout" as const))),
    () => Effect.yieldNow() // let it start (and be tracked) now
  )

/**
 * Asserts `fiber` is still running just before `from` (ms since the test's start) and has finished by `to`: the clock
 * is moved to each instant in turn (it only moves forward).
 */
const finishesWithin = (fiber: Fiber.RuntimeFiber<unknown, unknown>, from: number, to: number) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(from - 1)
    expect(Option.isNone(yield* Fiber.poll(fiber)), `running at ${from - 1} ms`).toBe(true)
    yield* TestClock.setTime(to)
    expect(Option.isSome(yield* Fiber.poll(fiber)), `done at ${to} ms`).toBe(true)
  })

describe("Deadlines", () => {
  it.scoped("a call fails with onTimeout within [timeout - 2 ticks, timeout - tick]", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(1000)) // tick 50 ms
      const fiber = yield* call(deadlines)
      yield* finishesWithin(fiber, 900, 950)
      expect(yield* Fiber.join(fiber)).toBe("timeout")
    }))

  it.scoped("shortened while a call is in flight: the new calls get the new deadline, the old call keeps its own", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(1000))
      const old = yield* call(deadlines)
      deadlines.setTimeout(Duration.millis(200)) // tick 10 ms
      expect(Duration.toMillis(deadlines.timeout())).toBe(200)
      const young = yield* call(deadlines)
      // The young call expires first (though tracked after the old one), near 200 ms; the old one is not touched.
      yield* finishesWithin(young, 180, 190)
      expect(Option.isNone(yield* Fiber.poll(old))).toBe(true)
      // The sweeper now ticks every 10 ms: the old call is failed at most a tick after its instant (900 ms).
      yield* finishesWithin(old, 900, 910)
    }))

  it.scoped("lengthened: the calls started before keep their shorter deadline, the new ones get the longer one", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(200))
      const old = yield* call(deadlines)
      deadlines.setTimeout(Duration.millis(1000))
      const young = yield* call(deadlines)
      // Its instant is 180 ms; the sweeper ticks every 50 ms from the change on.
      yield* finishesWithin(old, 180, 230)
      expect(Option.isNone(yield* Fiber.poll(young))).toBe(true)
      yield* finishesWithin(young, 900, 950)
    }))

  it.scoped("a call that settles in time is not failed, whichever generation it is in", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(200))
      let resolve: (value: string) => void = () => {}
      const fiber = yield* Effect.fork(deadlines.run(() => new Promise<string>((r) => (resolve = r)), () => "error", () => "timeout"))
      yield* TestClock.adjust("1 millis")
      deadlines.setTimeout(Duration.millis(100))
      resolve("value")
      expect(yield* Fiber.join(fiber)).toBe("value")
      yield* TestClock.adjust("1 seconds")
    }))
})
