/**
 * Admission races: a caller reads the breaker (OPEN and due, or HALF_OPEN with a free slot), and before it takes its
 * decision another caller's probe changes the state. Whatever the interleaving, the late caller must decide on the
 * state as it is then: never a second probe while one is in flight, never a call while the breaker has just
 * re-opened, and an ordinary call (not a probe) once the breaker has closed.
 *
 * The late caller is parked before its k-th operation while the other one calls; k sweeps every point of admission.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Scheduler from "effect/Scheduler"
import * as TestClock from "effect/TestClock"
import { CircuitBreaker, CircuitOpenError, TransientError } from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "connection_refused", message: "refused" })

/**
 * A scheduler that parks the fiber before its k-th operation, until `resume` is called: the test decides what
 * happens while it is parked. (After `resume`, it never parks: k may lie beyond the point the test cares about.)
 */
const parkBeforeOp = (k: number) => {
  let ops = 0
  let parking = false
  let parked: (() => void) | undefined
  let resumed = false
  const scheduler = Scheduler.make(
    (task, priority) => {
      if (parking) {
        parking = false
        parked = task
      } else {
        Scheduler.defaultScheduler.scheduleTask(task, priority)
      }
    },
    () => {
      if (resumed || ++ops !== k) return false
      parking = true
      return 0
    }
  )
  const resume = Effect.sync(() => {
    resumed = true
    const task = parked
    parked = undefined
    if (task !== undefined) Scheduler.defaultScheduler.scheduleTask(task, 0)
  })
  return { scheduler, resume }
}

const settle = Effect.repeatN(Effect.yieldNow(), 4)

const SWEEP = 40

/**
 * For each k: a breaker due for a probe; the late caller X starts (and yields before op k); then Y calls and ends
 * as `yOutcome` (or stays in flight); then X goes on. Returns, per k, whether X and Y ran and what X got.
 */
const race = <E>(
  yOutcome: (gate: Deferred.Deferred<void>) => Effect.Effect<string, E>,
  check: (run: {
    readonly k: number
    readonly breaker: CircuitBreaker.CircuitBreaker
    readonly xRan: boolean
    readonly yRan: boolean
    readonly x: Either.Either<string, unknown>
  }) => Effect.Effect<void, unknown>,
  /** Checked while X is still in flight (when it was admitted). */
  whileXInFlight: (run: { readonly k: number; readonly breaker: CircuitBreaker.CircuitBreaker; readonly yRan: boolean }) =>
    Effect.Effect<void, unknown> = () => Effect.void
) =>
  Effect.gen(function*() {
    let yFirst = 0
    let xFirst = 0
    for (let k = 1; k <= SWEEP; k++) {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      yield* TestClock.adjust("1 second")

      const xRan = yield* Ref.make(false)
      const xGate = yield* Deferred.make<void>()
      const park = parkBeforeOp(k)
      const x = yield* Effect.fork(Effect.either(Effect.withScheduler(
        breaker.execute("x", Effect.zipRight(Ref.set(xRan, true), Effect.as(Deferred.await(xGate), "x"))),
        park.scheduler
      )))
      yield* settle

      const yRan = yield* Ref.make(false)
      const yGate = yield* Deferred.make<void>()
      const y = yield* Effect.fork(Effect.either(breaker.execute("y", Effect.zipRight(Ref.set(yRan, true), yOutcome(yGate)))))
      yield* settle
      yield* park.resume
      yield* settle

      if (yield* Ref.get(yRan)) yFirst++
      else xFirst++
      yield* whileXInFlight({ k, breaker, yRan: yield* Ref.get(yRan) })
      yield* Deferred.succeed(xGate, undefined)
      const xResult = yield* Fiber.join(x)
      yield* check({ k, breaker, xRan: yield* Ref.get(xRan), yRan: yield* Ref.get(yRan), x: xResult })
      yield* Deferred.succeed(yGate, undefined)
      yield* Fiber.join(y)
    }
    // sanity: the sweep crossed the admission point (both callers won the race for some k)
    expect(yFirst).toBeGreaterThan(0)
    expect(xFirst).toBeGreaterThan(0)
  })

const isOpenError = (x: Either.Either<string, unknown>, retryAfterMillis: number) =>
  Either.isLeft(x) && x.left instanceof CircuitOpenError && Duration.toMillis(x.left.retryAfter) === retryAfterMillis

describe("CircuitBreaker admission races", () => {
  it.effect("while another caller's probe is in flight, a late caller is rejected: never two probes at once", () =>
    race(
      (gate) => Effect.as(Deferred.await(gate), "y"),
      ({ k, x, xRan, yRan }) =>
        Effect.sync(() => {
          expect(xRan && yRan, `k = ${k}: two probes ran at once`).toBe(false)
          if (yRan) expect(isOpenError(x, 0), `k = ${k}: ${String(x)}`).toBe(true)
        })
    ))

  it.effect("after another caller's probe re-opened the breaker, a late caller is rejected for the fresh open period", () =>
    race(
      () => Effect.fail(transient),
      ({ breaker, k, x, xRan, yRan }) =>
        Effect.gen(function*() {
          if (yRan) {
            expect(xRan, `k = ${k}: ran while OPEN`).toBe(false)
            expect(isOpenError(x, 1_000), `k = ${k}: ${String(x)}`).toBe(true)
            expect(yield* breaker.state).toBe("OPEN")
          }
        })
    ))

  it.effect("after another caller's probe closed the breaker, a late caller runs as an ordinary call, not as a probe", () =>
    race(
      () => Effect.succeed("y"),
      ({ breaker, k, x }) =>
        Effect.gen(function*() {
          expect(x, `k = ${k}`).toStrictEqual(Either.right("x"))
          expect(yield* breaker.snapshot, `k = ${k}`).toMatchObject({ state: "CLOSED", opens: 1 })
        }),
      ({ breaker, k, yRan }) =>
        Effect.gen(function*() {
          if (!yRan) return
          // the late call is in flight as an ordinary call: the breaker is CLOSED and others run too
          expect(yield* breaker.state, `k = ${k}`).toBe("CLOSED")
          expect(yield* breaker.execute("z", Effect.succeed("z")), `k = ${k}`).toBe("z")
        })
    ))
})
