import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import { Deadline, PermanentError, Retry, TransientError } from "@steadfast/resilience"

const timeout = (operation: string, millis: number) =>
  new TransientError({ operation, reason: "timeout", message: `${operation} exceeded its ${millis} ms deadline` })

describe("Deadline", () => {
  it.effect("fails with a timeout TransientError exactly at the deadline, and interrupts the effect", () =>
    Effect.gen(function*() {
      const interrupted = yield* Ref.make(false)
      const finished = yield* Ref.make(false)
      const slow = Effect.sleep("1 second").pipe(
        Effect.zipRight(Ref.set(finished, true)),
        Effect.onInterrupt(() => Ref.set(interrupted, true))
      )
      const fiber = yield* Effect.fork(Deadline.within("get", "200 millis")(slow))
      yield* TestClock.adjust("199 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      expect(yield* Ref.get(interrupted)).toBe(false)
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(fiber)
      expect(exit).toStrictEqual(Exit.fail(timeout("get", 200)))
      expect(yield* Ref.get(interrupted)).toBe(true)
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(finished)).toBe(false)
    }))

  it.effect("the error is a TransientError with reason timeout and the documented message", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.flip(Deadline.within("mget", 1_500)(Effect.never)))
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toBeInstanceOf(TransientError)
      expect(error.operation).toBe("mget")
      expect(error.reason).toBe("timeout")
      expect(error.message).toBe("mget exceeded its 1500 ms deadline")
    }))

  it.effect("passes a fast effect's value, and its own error, through unchanged", () =>
    Effect.gen(function*() {
      const deadline = Deadline.within("get", "200 millis")
      const fast = yield* Effect.fork(deadline(Effect.as(Effect.sleep("199 millis"), "value")))
      yield* TestClock.adjust("199 millis")
      expect(yield* Fiber.join(fast)).toBe("value")
      const permanent = new PermanentError({ operation: "get", reason: "wrong_type", message: "WRONGTYPE" })
      expect(yield* Effect.flip(deadline(Effect.fail(permanent)))).toBe(permanent)
    }))

  it.effect("a timed-out attempt is retried by a policy (deadline per attempt)", () =>
    Effect.gen(function*() {
      const starts = yield* Ref.make<ReadonlyArray<number>>([])
      const attempt = Effect.zipRight(
        Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.update(starts, (s) => [...s, now])),
        Effect.never
      )
      const policy = Retry.make({ maxRetries: 2, baseDelay: "100 millis", jitter: false })
      const fiber = yield* Effect.fork(Retry.retry(Deadline.within("get", "100 millis")(attempt), policy))
      yield* TestClock.adjust("10 seconds")
      // attempt, timeout at 100, wait 100, attempt at 200, timeout at 300, wait 200, attempt at 500
      expect(yield* Ref.get(starts)).toStrictEqual([0, 200, 500])
      expect(yield* Fiber.await(fiber)).toStrictEqual(Exit.fail(timeout("get", 100)))
    }))

  it("rejects a non-positive or malformed duration with IllegalArgumentException", () => {
    for (const duration of [0, -1, Number.NaN, "whenever"]) {
      let thrown: unknown = undefined
      try {
        Deadline.within("get", duration as number)
      } catch (error) {
        thrown = error
      }
      expect(Cause.isIllegalArgumentException(thrown), String(duration)).toBe(true)
    }
  })
})
