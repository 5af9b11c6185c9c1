/**
 * Rejections are built without a stack trace (they are raised on the hot path), by lowering
 * `Error.stackTraceLimit` for the time of one constructor call: the process-wide setting must be left as it was.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import { CircuitBreaker, CircuitOpenError, TransientError } from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "timeout", message: "timed out" })

/** Runs `self` with `Error.stackTraceLimit` set to `limit`, restoring the previous value afterwards. */
const withStackTraceLimit = <A, E>(limit: number, self: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const previous = Error.stackTraceLimit
      Error.stackTraceLimit = limit
      return previous
    }),
    () => self,
    (previous) => Effect.sync(() => {
      Error.stackTraceLimit = previous
    })
  )

/** A breaker (threshold 1, 1 second) that has just opened. */
const opened = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
  yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
  return breaker
})

/** A breaker whose probe is in flight (until the scope of the test ends). */
const probing = Effect.gen(function*() {
  const breaker = yield* opened
  yield* TestClock.adjust("1 second")
  yield* Effect.fork(breaker.execute("get", Effect.never))
  yield* Effect.yieldNow()
  return breaker
})

const reject = (breaker: CircuitBreaker.CircuitBreaker, operation: string) =>
  Effect.flip(breaker.execute(operation, Effect.void)) as Effect.Effect<CircuitOpenError>

const hasFrames = (error: Error) => (error.stack ?? "").split("\n").some((line) => line.trimStart().startsWith("at "))

describe("CircuitBreaker rejections", () => {
  it.effect("Error.stackTraceLimit is restored after a rejection, while OPEN and while a probe is in flight", () =>
    withStackTraceLimit(
      23,
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
        yield* Effect.either(breaker.execute("get", Effect.fail(transient)))

        const open = yield* Effect.flip(breaker.execute("get", Effect.void))
        expect(open).toBeInstanceOf(CircuitOpenError)
        expect(Error.stackTraceLimit).toBe(23)

        yield* TestClock.adjust("1 second")
        const gate = yield* Deferred.make<void>()
        yield* Effect.fork(breaker.execute("get", Deferred.await(gate)))
        yield* Effect.yieldNow()
        const probing = yield* Effect.flip(breaker.execute("mget", Effect.void))
        expect(probing).toBeInstanceOf(CircuitOpenError)
        expect(Error.stackTraceLimit).toBe(23)

        // the rest of the process still gets stack traces
        expect(hasFrames(new Error("elsewhere"))).toBe(true)
        yield* Deferred.succeed(gate, undefined)
      })
    ))

  it.effect("a rejection carries no stack frames, and names the operation and the reason in its message", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      const open = yield* Effect.flip(breaker.execute("mget", Effect.void))
      expect(hasFrames(open as Error)).toBe(false)
      expect(open.message).toBe(`Circuit breaker is open: "mget" rejected, retry after 1000 ms`)

      yield* TestClock.adjust("1 second")
      const gate = yield* Deferred.make<void>()
      yield* Effect.fork(breaker.execute("get", Deferred.await(gate)))
      yield* Effect.yieldNow()
      const probing = yield* Effect.flip(breaker.execute("set", Effect.void))
      expect(hasFrames(probing as Error)).toBe(false)
      expect(probing.message).toBe(`Circuit breaker is half-open: "set" rejected while a probe is in flight`)
      yield* Deferred.succeed(gate, undefined)
    }))

  // README: "the CircuitOpenError is [...] reused for calls in the same millisecond", per operation.
  for (const [state, breakerIn] of [["OPEN", opened], ["HALF_OPEN (probe in flight)", probing]] as const) {
    it.effect(`${state}: interleaved operations each keep reusing their own rejection`, () =>
      Effect.gen(function*() {
        const breaker = yield* breakerIn
        const first = { get: yield* reject(breaker, "get"), set: yield* reject(breaker, "set") }
        for (let i = 0; i < 3; i++) {
          expect(yield* reject(breaker, "get")).toBe(first.get)
          expect(yield* reject(breaker, "set")).toBe(first.set)
        }
        expect(first.get).not.toBe(first.set)
        expect([first.get.operation, first.set.operation]).toStrictEqual(["get", "set"])
      }))

    it.effect(`${state}: the reuse is bounded, so endless distinct operation names cannot grow memory without limit`, () =>
      Effect.gen(function*() {
        const breaker = yield* breakerIn
        const first = yield* reject(breaker, "op-0")
        for (let i = 1; i < 2_000; i++) yield* reject(breaker, `op-${i}`)
        const again = yield* reject(breaker, "op-0")
        expect(again).not.toBe(first)
        expect(again).toStrictEqual(first)
      }))
  }
})
