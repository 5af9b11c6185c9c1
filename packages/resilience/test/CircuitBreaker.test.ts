import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Scheduler from "effect/Scheduler"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { CircuitBreaker, CircuitOpenError, PermanentError, TransientError } from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "connection_reset_peer", message: "reset" })
const permanent = new PermanentError({ operation: "get", reason: "wrong_type", message: "WRONGTYPE" })

/** A protected effect that counts its runs and then does `then`. */
const counted = <A, E>(calls: Ref.Ref<number>, then: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.zipRight(Ref.update(calls, (n) => n + 1), then)

const failTransient = (calls: Ref.Ref<number>) => counted(calls, Effect.fail(transient))
const succeed = (calls: Ref.Ref<number>) => counted(calls, Effect.succeed("ok"))

/** Runs `self` through the breaker `n` times, ignoring the outcome. */
const times = <A, E>(breaker: CircuitBreaker.CircuitBreaker, n: number, self: Effect.Effect<A, E>) =>
  Effect.repeatN(Effect.either(breaker.execute("get", self)), n - 1)

/** The error of a call expected to be rejected by the breaker. */
const rejection = (breaker: CircuitBreaker.CircuitBreaker, operation: string, self: Effect.Effect<unknown, unknown>) =>
  Effect.flatMap(Effect.flip(breaker.execute(operation, self)), (error) =>
    error instanceof CircuitOpenError ? Effect.succeed(error) : Effect.dieMessage(`not a CircuitOpenError: ${String(error)}`))

const setup = (options: CircuitBreaker.Options) =>
  Effect.all({ breaker: CircuitBreaker.make(options), calls: Ref.make(0) })

describe("CircuitBreaker", () => {
  describe("CLOSED", () => {
    it.effect("stays CLOSED under N-1 consecutive failures, and every call runs", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 3 })
        yield* times(breaker, 2, failTransient(calls))
        expect(yield* breaker.state).toBe("CLOSED")
        expect((yield* breaker.snapshot).consecutiveFailures).toBe(2)
        expect(yield* Ref.get(calls)).toBe(2)
      }))

    it.effect("opens at exactly N consecutive failures", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 3 })
        yield* times(breaker, 2, failTransient(calls))
        // the N-th failure still runs the effect and returns its own error
        const third = yield* Effect.flip(breaker.execute("get", failTransient(calls)))
        expect(third).toBe(transient)
        expect(yield* breaker.state).toBe("OPEN")
        const snapshot = yield* breaker.snapshot
        expect(snapshot.consecutiveFailures).toBe(3)
        expect(snapshot.opens).toBe(1)
        expect(yield* Ref.get(calls)).toBe(3)
      }))

    it.effect("a success in between resets the count", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 3 })
        yield* times(breaker, 2, failTransient(calls))
        expect(yield* breaker.execute("get", succeed(calls))).toBe("ok")
        expect((yield* breaker.snapshot).consecutiveFailures).toBe(0)
        yield* times(breaker, 2, failTransient(calls))
        expect(yield* breaker.state).toBe("CLOSED")
        yield* times(breaker, 1, failTransient(calls))
        expect(yield* breaker.state).toBe("OPEN")
        expect(yield* Ref.get(calls)).toBe(6)
      }))

    it.effect("permanent errors never trip it and pass through unchanged", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 2 })
        for (let i = 0; i < 10; i++) {
          const error = yield* Effect.flip(breaker.execute("get", counted(calls, Effect.fail(permanent))))
          expect(error).toBe(permanent)
        }
        expect(yield* breaker.state).toBe("CLOSED")
        expect((yield* breaker.snapshot).consecutiveFailures).toBe(0)
        expect(yield* Ref.get(calls)).toBe(10)
      }))

    it.effect("permanent errors do not reset the count either", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 2 })
        yield* times(breaker, 1, failTransient(calls))
        yield* times(breaker, 1, Effect.fail(permanent))
        expect((yield* breaker.snapshot).consecutiveFailures).toBe(1)
        yield* times(breaker, 1, failTransient(calls))
        expect(yield* breaker.state).toBe("OPEN")
      }))

    it.effect("defects neither count nor reset, and pass through unchanged", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 2 })
        const boom = new Error("boom")
        yield* times(breaker, 1, failTransient(calls))
        for (let i = 0; i < 5; i++) {
          const exit = yield* Effect.exit(breaker.execute("get", Effect.die(boom)))
          expect(exit).toStrictEqual(Exit.die(boom))
        }
        expect(yield* breaker.state).toBe("CLOSED")
        expect((yield* breaker.snapshot).consecutiveFailures).toBe(1)
        yield* times(breaker, 1, failTransient(calls))
        expect(yield* breaker.state).toBe("OPEN")
      }))

    it.effect("isFailure decides what counts", () =>
      Effect.gen(function*() {
        const { breaker } = yield* setup({ failureThreshold: 2, isFailure: () => true })
        yield* times(breaker, 2, Effect.fail(permanent))
        expect(yield* breaker.state).toBe("OPEN")
        const throwing = yield* CircuitBreaker.make({
          failureThreshold: 1,
          isFailure: () => {
            throw new Error("bug in predicate")
          }
        })
        yield* times(throwing, 1, Effect.fail(permanent))
        expect(yield* throwing.state).toBe("OPEN")
      }))

    it.effect("a slow call admitted before the breaker re-closed does not count afterwards", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "1 second" })
        const gate = yield* Deferred.make<void>()
        const slow = yield* Effect.fork(breaker.execute("get", Effect.zipRight(Deferred.await(gate), Effect.fail(transient))))
        yield* Effect.yieldNow()
        yield* times(breaker, 1, failTransient(calls)) // opens
        yield* TestClock.adjust("1 second")
        yield* times(breaker, 1, succeed(calls)) // probe closes
        expect(yield* breaker.state).toBe("CLOSED")
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Effect.flip(Fiber.join(slow))).toBe(transient)
        expect(yield* breaker.state).toBe("CLOSED")
        expect((yield* breaker.snapshot).consecutiveFailures).toBe(0)
      }))
  })

  describe("OPEN", () => {
    it.effect("rejects without running the effect; the error carries operation and an exact, decreasing retryAfter", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "10 seconds" })
        yield* times(breaker, 1, failTransient(calls))
        expect(yield* Ref.get(calls)).toBe(1)

        const first = yield* rejection(breaker, "mget", succeed(calls))
        expect(first.operation).toBe("mget")
        expect(Duration.toMillis(first.retryAfter)).toBe(10_000)
        expect(first.message).toContain("mget")

        yield* TestClock.adjust("4 seconds")
        const second = yield* rejection(breaker, "get", succeed(calls))
        expect(second.operation).toBe("get")
        expect(Duration.toMillis(second.retryAfter)).toBe(6_000)
        expect(Option.map((yield* breaker.snapshot).retryAfter, Duration.toMillis)).toStrictEqual(Option.some(6_000))

        for (let i = 0; i < 50; i++) yield* rejection(breaker, "get", succeed(calls))
        expect(yield* Ref.get(calls)).toBe(1)
      }))

    it.effect("rejections in the same millisecond share one CircuitOpenError; a later one gets a fresh retryAfter", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "10 seconds" })
        yield* times(breaker, 1, failTransient(calls))
        const a = yield* rejection(breaker, "get", succeed(calls))
        const b = yield* rejection(breaker, "get", succeed(calls))
        const other = yield* rejection(breaker, "set", succeed(calls))
        expect(b).toBe(a)
        expect(other).not.toBe(a)
        expect(other.operation).toBe("set")
        yield* TestClock.adjust("1 millis")
        const c = yield* rejection(breaker, "get", succeed(calls))
        expect(c).not.toBe(a)
        expect(Duration.toMillis(c.retryAfter)).toBe(9_999)
      }))

    it.effect("no probe before halfOpenAfter; the probe is allowed at exactly halfOpenAfter", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "10 seconds" })
        yield* times(breaker, 1, failTransient(calls))
        yield* TestClock.adjust(Duration.millis(9_999))
        const error = yield* rejection(breaker, "get", succeed(calls))
        expect(Duration.toMillis(error.retryAfter)).toBe(1)
        expect(yield* Ref.get(calls)).toBe(1)
        expect(yield* breaker.state).toBe("OPEN")

        yield* TestClock.adjust(Duration.millis(1))
        expect(yield* breaker.execute("get", succeed(calls))).toBe("ok")
        expect(yield* Ref.get(calls)).toBe(2)
      }))

    it.effect("state stays OPEN (retryAfter zero) once due until somebody calls", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "1 second" })
        yield* times(breaker, 1, failTransient(calls))
        yield* TestClock.adjust("5 seconds")
        const snapshot = yield* breaker.snapshot
        expect(snapshot.state).toBe("OPEN")
        expect(Option.map(snapshot.retryAfter, Duration.toMillis)).toStrictEqual(Option.some(0))
      }))
  })

  describe("HALF_OPEN", () => {
    it.effect("probe success closes the breaker with a zero count", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 2, halfOpenAfter: "1 second" })
        yield* times(breaker, 2, failTransient(calls))
        yield* TestClock.adjust("1 second")
        expect(yield* breaker.execute("get", succeed(calls))).toBe("ok")
        const snapshot = yield* breaker.snapshot
        expect(snapshot.state).toBe("CLOSED")
        expect(snapshot.consecutiveFailures).toBe(0)
        expect(snapshot.retryAfter).toStrictEqual(Option.none())
        // closed again: one failure is not enough to re-open with threshold 2
        yield* times(breaker, 1, failTransient(calls))
        expect(yield* breaker.state).toBe("CLOSED")
      }))

    it.effect("probe failure re-opens it with a fresh open period", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "10 seconds" })
        yield* times(breaker, 1, failTransient(calls))
        yield* TestClock.adjust("10 seconds")
        const probeError = yield* Effect.flip(breaker.execute("get", failTransient(calls)))
        expect(probeError).toBe(transient)
        expect(yield* Ref.get(calls)).toBe(2)
        const snapshot = yield* breaker.snapshot
        expect(snapshot.state).toBe("OPEN")
        expect(snapshot.opens).toBe(2)
        expect(Option.map(snapshot.retryAfter, Duration.toMillis)).toStrictEqual(Option.some(10_000))

        yield* TestClock.adjust(Duration.millis(9_999))
        expect(Duration.toMillis((yield* rejection(breaker, "get", succeed(calls))).retryAfter)).toBe(1)
        expect(yield* Ref.get(calls)).toBe(2)
        yield* TestClock.adjust(Duration.millis(1))
        expect(yield* breaker.execute("get", succeed(calls))).toBe("ok")
        expect(yield* Ref.get(calls)).toBe(3)
      }))

    it.effect("100 concurrent callers with a slow probe: exactly one runs, 99 get CircuitOpenError with retryAfter zero", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "1 second" })
        yield* times(breaker, 1, failTransient(calls))
        yield* Ref.set(calls, 0)
        yield* TestClock.adjust("1 second")

        const slowProbe = counted(calls, Effect.as(Effect.sleep("5 seconds"), "probed"))
        const fiber = yield* Effect.fork(
          Effect.forEach(
            Array.from({ length: 100 }, (_, i) => i),
            () => Effect.either(breaker.execute("get", slowProbe)),
            { concurrency: "unbounded" }
          )
        )
        yield* TestClock.adjust("1 second")
        expect(yield* breaker.state).toBe("HALF_OPEN")
        expect(yield* Ref.get(calls)).toBe(1)
        yield* TestClock.adjust("4 seconds")
        const results = yield* Fiber.join(fiber)

        const rights = results.filter(Either.isRight)
        const lefts = results.filter(Either.isLeft).map((e) => e.left)
        expect(rights.map((r) => r.right)).toStrictEqual(["probed"])
        expect(lefts).toHaveLength(99)
        for (const error of lefts) {
          expect(error).toBeInstanceOf(CircuitOpenError)
          expect(Duration.toMillis((error as CircuitOpenError).retryAfter)).toBe(0)
        }
        expect(yield* Ref.get(calls)).toBe(1)
        expect(yield* breaker.state).toBe("CLOSED")
      }))

    it.effect("an interrupted probe frees the slot", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "1 second" })
        yield* times(breaker, 1, failTransient(calls))
        yield* TestClock.adjust("1 second")
        const started = yield* Deferred.make<void>()
        const probe = yield* Effect.fork(breaker.execute("get", Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)))
        yield* Deferred.await(started)
        // the probe is in flight: others are rejected
        expect(Duration.toMillis((yield* rejection(breaker, "get", succeed(calls))).retryAfter)).toBe(0)
        yield* Fiber.interrupt(probe)
        expect(yield* breaker.state).toBe("HALF_OPEN")
        // the next caller is the new probe
        expect(yield* breaker.execute("get", succeed(calls))).toBe("ok")
        expect(yield* breaker.state).toBe("CLOSED")
      }))

    it.effect("a probe interrupted before it even started running frees the slot", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "1 second" })
        yield* times(breaker, 1, failTransient(calls))
        yield* TestClock.adjust("1 second")
        // fork and interrupt at once, many times: whatever point admission reached, the slot must be free afterwards
        for (let i = 0; i < 20; i++) {
          const fiber = yield* Effect.fork(breaker.execute("get", Effect.never))
          if (i % 2 === 0) yield* Effect.yieldNow()
          yield* Fiber.interrupt(fiber)
        }
        expect(yield* breaker.execute("get", succeed(calls))).toBe("ok")
        expect(yield* breaker.state).toBe("CLOSED")
      }))

    it.effect("no interruption point can wedge the probe slot (the probe is interrupted at every op boundary)", () =>
      Effect.gen(function*() {
        // A scheduler that makes the fiber yield exactly once, before its k-th operation: the test interrupts it
        // there. Over k = 1..60 this covers every point of admission, including right after the Ref.modify.
        const yieldBeforeOp = (k: number) => {
          let ops = 0
          return Scheduler.make(
            (task, priority) => Scheduler.defaultScheduler.scheduleTask(task, priority),
            () => ++ops === k ? 0 : false
          )
        }
        let interruptedWhileSuspended = 0
        for (let k = 1; k <= 60; k++) {
          const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "1 second" })
          yield* times(breaker, 1, failTransient(calls))
          yield* TestClock.adjust("1 second")
          const started = yield* Ref.make(false)
          const probe = yield* Effect.fork(
            Effect.withScheduler(breaker.execute("get", Effect.zipRight(Ref.set(started, true), Effect.never)), yieldBeforeOp(k))
          )
          yield* Effect.yieldNow()
          if (yield* Ref.get(started)) interruptedWhileSuspended++
          yield* Fiber.interrupt(probe)
          const exit = yield* Effect.exit(breaker.execute("get", succeed(calls)))
          expect(exit, `interrupted before op ${k}`).toStrictEqual(Exit.succeed("ok"))
        }
        // sanity: the sweep reached past admission into the protected effect
        expect(interruptedWhileSuspended).toBeGreaterThan(0)
        expect(interruptedWhileSuspended).toBeLessThan(60)
      }))

    it.effect("a probe failing with an uncounted error or a defect releases the slot and stays HALF_OPEN", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "1 second" })
        yield* times(breaker, 1, failTransient(calls))
        yield* TestClock.adjust("1 second")
        expect(yield* Effect.flip(breaker.execute("get", counted(calls, Effect.fail(permanent))))).toBe(permanent)
        expect(yield* breaker.state).toBe("HALF_OPEN")
        expect(yield* Effect.exit(breaker.execute("get", counted(calls, Effect.dieMessage("bug"))))).toSatisfy(
          (exit: Exit.Exit<unknown, unknown>) => Exit.isFailure(exit) && Cause.isDie(exit.cause)
        )
        expect(yield* breaker.state).toBe("HALF_OPEN")
        expect(yield* breaker.execute("get", succeed(calls))).toBe("ok")
        expect(yield* Ref.get(calls)).toBe(4)
        expect(yield* breaker.state).toBe("CLOSED")
        expect((yield* breaker.snapshot).opens).toBe(1)
      }))
  })

  describe("observability and control", () => {
    it.effect("changes emits CLOSED -> OPEN -> HALF_OPEN -> CLOSED in order, with Clock timestamps", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 2, halfOpenAfter: "10 seconds" })
        const collected = yield* Effect.fork(Stream.runCollect(Stream.take(breaker.changes, 3)))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("1 second")
        yield* times(breaker, 2, failTransient(calls))
        yield* TestClock.adjust("10 seconds")
        yield* times(breaker, 1, succeed(calls))
        const changes = Chunk.toReadonlyArray(yield* Fiber.join(collected))
        expect(changes).toStrictEqual([
          { from: "CLOSED", to: "OPEN", at: 1_000, consecutiveFailures: 2 },
          { from: "OPEN", to: "HALF_OPEN", at: 11_000, consecutiveFailures: 2 },
          { from: "HALF_OPEN", to: "CLOSED", at: 11_000, consecutiveFailures: 0 }
        ])
      }))

    it.scoped("subscribe sees re-opens and resets; snapshot counts opens", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "1 second" })
        const queue = yield* breaker.subscribe
        yield* times(breaker, 1, failTransient(calls))
        yield* TestClock.adjust("1 second")
        yield* times(breaker, 1, failTransient(calls))
        yield* TestClock.adjust("1 second")
        yield* times(breaker, 1, failTransient(calls))
        expect((yield* breaker.snapshot).opens).toBe(3)
        yield* breaker.reset
        const snapshot = yield* breaker.snapshot
        expect(snapshot).toStrictEqual({
          state: "CLOSED",
          consecutiveFailures: 0,
          opens: 3,
          retryAfter: Option.none(),
          retryAfterMillis: null,
          rule: "consecutive(1)",
          window: { calls: 0, failures: 0, slowCalls: 0, failureRatio: 0 },
          breakMillis: 1000,
          probes: { permitted: 1, admitted: 0, succeeded: 0, failed: 0 }
        })
        // Serialisable as it is, for health endpoints.
        expect(JSON.parse(JSON.stringify(snapshot))).toMatchObject({ state: "CLOSED", opens: 3, retryAfterMillis: null })
        const changes = Chunk.toReadonlyArray(yield* Queue.takeAll(queue)).map((c) => `${c.from}->${c.to}@${c.at}`)
        expect(changes).toStrictEqual([
          "CLOSED->OPEN@0",
          "OPEN->HALF_OPEN@1000",
          "HALF_OPEN->OPEN@1000",
          "OPEN->HALF_OPEN@2000",
          "HALF_OPEN->OPEN@2000",
          "OPEN->CLOSED@2000"
        ])
      }))

    it.effect("reset closes an OPEN breaker, and a probe still in flight is then ignored", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({ failureThreshold: 1, halfOpenAfter: "1 second" })
        yield* times(breaker, 1, failTransient(calls))
        yield* TestClock.adjust("1 second")
        const gate = yield* Deferred.make<void>()
        const probe = yield* Effect.fork(breaker.execute("get", Effect.zipRight(Deferred.await(gate), Effect.fail(transient))))
        yield* Effect.yieldNow()
        expect(yield* breaker.state).toBe("HALF_OPEN")
        yield* breaker.reset
        expect(yield* breaker.state).toBe("CLOSED")
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Effect.flip(Fiber.join(probe))).toBe(transient)
        expect(yield* breaker.state).toBe("CLOSED")
        expect((yield* breaker.snapshot).opens).toBe(1)
        expect(yield* breaker.execute("get", succeed(calls))).toBe("ok")
      }))

    it.effect("layer provides the CircuitBreaker tag", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        yield* times(breaker, 1, Effect.fail(transient))
        expect(yield* breaker.state).toBe("OPEN")
      }).pipe(Effect.provide(CircuitBreaker.layer({ failureThreshold: 1 }))))

    it.effect("defaults: 5 consecutive failures, 30 seconds", () =>
      Effect.gen(function*() {
        const { breaker, calls } = yield* setup({})
        yield* times(breaker, 4, failTransient(calls))
        expect(yield* breaker.state).toBe("CLOSED")
        yield* times(breaker, 1, failTransient(calls))
        expect(Duration.toMillis((yield* rejection(breaker, "get", succeed(calls))).retryAfter)).toBe(30_000)
      }))

    it.effect("invalid options die with IllegalArgumentException", () =>
      Effect.gen(function*() {
        const invalid: ReadonlyArray<CircuitBreaker.Options> = [
          { failureThreshold: 0 },
          { failureThreshold: 1.5 },
          { failureThreshold: Number.NaN },
          { halfOpenAfter: 0 },
          { halfOpenAfter: -5 },
          { halfOpenAfter: Duration.infinity },
          { halfOpenAfter: "soon" as Duration.DurationInput }
        ]
        for (const options of invalid) {
          const exit = yield* Effect.exit(CircuitBreaker.make(options))
          expect(Exit.isFailure(exit) && Option.exists(Cause.dieOption(exit.cause), Cause.isIllegalArgumentException))
            .toBe(true)
        }
        expect(Exit.isSuccess(yield* Effect.exit(CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: 1 }))))
          .toBe(true)
      }))
  })
})
