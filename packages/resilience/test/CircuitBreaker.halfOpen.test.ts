/**
 * HALF_OPEN with N probes and a success ratio, the probe timeout, exponential breaks, isolate / reset, the JSON
 * snapshot, `CircuitBreaker.protect`, and the synchronous permit API, all as a caller sees them.
 *
 * Every breaker is made inside its test, so it reads the test's `TestClock` (the clock starts at 0).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import { BreakerRule, CircuitBreaker, CircuitOpenError, PermanentError, TransientError } from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "connection_refused", message: "refused" })
const permanent = new PermanentError({ operation: "get", reason: "wrong_type", message: "WRONGTYPE" })

type Breaker = CircuitBreaker.CircuitBreaker
type Failure = TransientError | PermanentError

/** A breaker that opened on its first failure (at t = 0) and whose break of `halfOpenAfter` has elapsed. */
const dueForProbes = (options: CircuitBreaker.Options & { readonly halfOpenAfter: Duration.DurationInput }) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, ...options })
    yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
    expect(yield* breaker.state).toBe("OPEN")
    yield* TestClock.adjust(options.halfOpenAfter)
    return breaker
  })

/**
 * Starts a call through the breaker and waits until it was either admitted (its effect is running, parked until
 * `end`) or rejected. `end` settles it and answers its `Exit`.
 */
const start = (breaker: Breaker, operation = "get") =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const gate = yield* Deferred.make<string, Failure>()
    const fiber = yield* Effect.fork(
      breaker.execute(operation, Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)))
    )
    const admitted = yield* Effect.raceFirst(
      Effect.as(Deferred.await(started), true),
      Effect.as(Fiber.await(fiber), false)
    )
    const end = (exit: Exit.Exit<string, Failure>) => Effect.zipRight(Deferred.done(gate, exit), Effect.exit(Fiber.join(fiber)))
    return {
      admitted,
      fiber,
      succeed: end(Exit.succeed("probed")),
      fail: (error: Failure = transient) => end(Exit.fail(error)),
      die: end(Exit.die("bug")),
      interrupt: Effect.zipRight(Fiber.interrupt(fiber), Effect.void)
    }
  })

/** A call that ends at once with `outcome`, ignoring its result. */
const call = (breaker: Breaker, outcome: "S" | "F") =>
  Effect.either(breaker.execute("get", outcome === "S" ? Effect.succeed("ok") : Effect.fail(transient)))

const rejectionOf = (breaker: Breaker, operation = "get") =>
  Effect.gen(function*() {
    const ran = yield* Ref.make(false)
    const error = yield* Effect.flip(breaker.execute(operation, Effect.as(Ref.set(ran, true), "ran")))
    expect(yield* Ref.get(ran)).toBe(false)
    expect(error).toBeInstanceOf(CircuitOpenError)
    return error as CircuitOpenError
  })

const retryAfterMillis = (error: CircuitOpenError) => Duration.toMillis(error.retryAfter)

describe("HALF_OPEN: N probes", () => {
  it.effect("exactly N callers are admitted as probes; the N+1-th is rejected at once with retryAfter 0", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second", halfOpen: { probes: 3 } })
      const probes = [yield* start(breaker), yield* start(breaker), yield* start(breaker)]
      expect(probes.map((p) => p.admitted)).toStrictEqual([true, true, true])
      expect((yield* breaker.snapshot).probes).toStrictEqual({ permitted: 3, admitted: 3, succeeded: 0, failed: 0 })
      expect(breaker.rejectsNow()).toBe(true)
      const rejected = yield* rejectionOf(breaker)
      expect(retryAfterMillis(rejected)).toBe(0)
      expect(rejected.message).toBe(`Circuit breaker is half-open: "get" rejected while its 3 probes are in flight`)
      for (const probe of probes) expect(yield* probe.succeed).toStrictEqual(Exit.succeed("probed"))
      expect(yield* breaker.state).toBe("CLOSED")
    }))

  it.effect("with one probe (the default) the message speaks of a probe", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second" })
      const probe = yield* start(breaker)
      expect(probe.admitted).toBe(true)
      expect((yield* rejectionOf(breaker)).message).toBe(`Circuit breaker is half-open: "get" rejected while a probe is in flight`)
      yield* probe.succeed
    }))

  for (const probes of [1, 2, 7, 32]) {
    it.effect(`1,000 fibers arriving together at a breaker due for ${probes} probe(s): exactly ${probes} run`, () =>
      Effect.gen(function*() {
        const breaker = yield* dueForProbes({ halfOpenAfter: "1 second", halfOpen: { probes } })
        const entered = yield* Ref.make(0)
        const rejected = yield* Ref.make(0)
        const gate = yield* Deferred.make<void>()
        const total = 1_000
        const fiber = yield* Effect.fork(Effect.forEach(
          Array.from({ length: total }, (_, i) => i),
          (i) =>
            Effect.zipRight(
              Effect.repeatN(Effect.yieldNow(), i % 4),
              breaker.execute("get", Effect.zipRight(Ref.update(entered, (n) => n + 1), Deferred.await(gate))).pipe(
                Effect.catchTag("CircuitOpenError", () => Ref.update(rejected, (n) => n + 1))
              )
            ),
          { concurrency: "unbounded", discard: true }
        ))
        // every fiber has either entered (and waits at the gate) or been rejected
        for (let spins = 0; spins < 10_000; spins++) {
          if ((yield* Ref.get(entered)) + (yield* Ref.get(rejected)) === total) break
          yield* Effect.yieldNow()
        }
        expect({ entered: yield* Ref.get(entered), rejected: yield* Ref.get(rejected) })
          .toStrictEqual({ entered: probes, rejected: total - probes })
        expect((yield* breaker.snapshot).probes.admitted).toBe(probes)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(fiber)
        expect(yield* breaker.state).toBe("CLOSED")
      }))
  }

  it.effect("probes that give their slots back while others keep arriving: never more than N in flight", () =>
    Effect.gen(function*() {
      const probes = 3
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second", halfOpen: { probes } })
      const inFlight = yield* Ref.make(0)
      const maxInFlight = yield* Ref.make(0)
      const admitted = yield* Ref.make(0)
      // Each admitted call runs a few steps and ends with a defect: no outcome, its slot is given back.
      const body = (i: number) =>
        Effect.gen(function*() {
          const now = yield* Ref.updateAndGet(inFlight, (n) => n + 1)
          yield* Ref.update(maxInFlight, (m) => Math.max(m, now))
          yield* Ref.update(admitted, (n) => n + 1)
          yield* Effect.repeatN(Effect.yieldNow(), i % 5)
          yield* Ref.update(inFlight, (n) => n - 1)
          return yield* Effect.dieMessage("no outcome")
        })
      yield* Effect.forEach(
        Array.from({ length: 500 }, (_, i) => i),
        (i) => Effect.zipRight(Effect.repeatN(Effect.yieldNow(), i % 7), Effect.exit(breaker.execute("get", body(i)))),
        { concurrency: "unbounded", discard: true }
      )
      expect(yield* Ref.get(maxInFlight)).toBe(probes)
      expect(yield* Ref.get(admitted)).toBeGreaterThan(probes) // the slots were re-used
      expect(yield* breaker.state).toBe("HALF_OPEN")
      expect((yield* breaker.snapshot).probes).toStrictEqual({ permitted: probes, admitted: 0, succeeded: 0, failed: 0 })
    }))
})

describe("HALF_OPEN: the success ratio", () => {
  const fiveAt60 = { halfOpenAfter: "1 second", halfOpen: { probes: 5, successRatio: 0.6 } } as const

  /** Plays probes one after the other, answering the state after each. */
  const probeSequence = (breaker: Breaker, outcomes: string) =>
    Effect.forEach(outcomes.split(""), (o) => Effect.zipRight(call(breaker, o as "S" | "F"), breaker.state))

  it.effect("3 of 5 (0.6): the third success closes it, whatever failed before", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes(fiveAt60)
      expect(yield* probeSequence(breaker, "SFSF")).toStrictEqual(["HALF_OPEN", "HALF_OPEN", "HALF_OPEN", "HALF_OPEN"])
      expect((yield* breaker.snapshot).probes).toStrictEqual({ permitted: 5, admitted: 4, succeeded: 2, failed: 2 })
      expect(yield* probeSequence(breaker, "S")).toStrictEqual(["CLOSED"])
      expect((yield* breaker.snapshot).consecutiveFailures).toBe(0)
    }))

  it.effect("3 of 5: three successes in a row close it without waiting for the other two probes", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes(fiveAt60)
      expect(yield* probeSequence(breaker, "SSS")).toStrictEqual(["HALF_OPEN", "HALF_OPEN", "CLOSED"])
    }))

  it.effect("3 of 5: it re-opens as soon as 3 successes are out of reach (the third failure)", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes(fiveAt60)
      expect(yield* probeSequence(breaker, "FSF")).toStrictEqual(["HALF_OPEN", "HALF_OPEN", "HALF_OPEN"])
      expect(yield* probeSequence(breaker, "F")).toStrictEqual(["OPEN"])
      const snapshot = yield* breaker.snapshot
      expect(snapshot.opens).toBe(2)
      expect(snapshot.retryAfterMillis).toBe(1_000)
      expect(snapshot.probes).toStrictEqual({ permitted: 5, admitted: 0, succeeded: 0, failed: 0 })
    }))

  it.effect("2 of 4 (0.5): two failures leave it reachable, the third re-opens", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second", halfOpen: { probes: 4, successRatio: 0.5 } })
      expect(yield* probeSequence(breaker, "FFS")).toStrictEqual(["HALF_OPEN", "HALF_OPEN", "HALF_OPEN"])
      expect(yield* probeSequence(breaker, "S")).toStrictEqual(["CLOSED"])
      const again = yield* dueForProbes({ halfOpenAfter: "1 second", halfOpen: { probes: 4, successRatio: 0.5 } })
      expect(yield* probeSequence(again, "SFFF")).toStrictEqual(["HALF_OPEN", "HALF_OPEN", "HALF_OPEN", "OPEN"])
    }))

  it.effect("all of N (the default ratio): any failed probe re-opens it", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second", halfOpen: { probes: 3 } })
      expect(yield* probeSequence(breaker, "SSF")).toStrictEqual(["HALF_OPEN", "HALF_OPEN", "OPEN"])
    }))

  it.effect("concurrent probes: once it has closed, the late outcomes of the other probes are ignored", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes(fiveAt60)
      const probes: Array<Effect.Effect.Success<ReturnType<typeof start>>> = []
      for (let i = 0; i < 5; i++) probes.push(yield* start(breaker))
      expect(probes.every((p) => p.admitted)).toBe(true)
      yield* probes[0]!.succeed
      yield* probes[1]!.fail()
      yield* probes[2]!.succeed
      expect(yield* breaker.state).toBe("HALF_OPEN")
      yield* probes[3]!.succeed
      expect(yield* breaker.state).toBe("CLOSED")
      // The fifth probe fails after the close: its caller sees its error, the breaker does not count it.
      expect(yield* probes[4]!.fail()).toStrictEqual(Exit.fail(transient))
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 0, opens: 1 })
    }))
})

describe("HALF_OPEN: a probe that ends without an outcome gives its slot back", () => {
  const endings: ReadonlyArray<readonly [string, (p: Effect.Effect.Success<ReturnType<typeof start>>) => Effect.Effect<unknown>]> = [
    ["an uncounted failure", (p) => p.fail(permanent)],
    ["a defect", (p) => p.die],
    ["an interruption", (p) => p.interrupt]
  ]
  for (const [how, end] of endings) {
    it.effect(`${how}: the slot is free again, and the outcomes so far are kept`, () =>
      Effect.gen(function*() {
        const breaker = yield* dueForProbes({ halfOpenAfter: "1 second", halfOpen: { probes: 2 } })
        yield* call(breaker, "S") // the first of the two probes succeeded
        const a = yield* start(breaker)
        expect(a.admitted).toBe(true)
        expect((yield* start(breaker)).admitted).toBe(false) // slots: 1 settled, 1 in flight
        yield* end(a)
        expect(yield* breaker.state).toBe("HALF_OPEN")
        expect((yield* breaker.snapshot).probes).toStrictEqual({ permitted: 2, admitted: 1, succeeded: 1, failed: 0 })
        const b = yield* start(breaker)
        expect(b.admitted).toBe(true)
        yield* b.succeed
        expect(yield* breaker.state).toBe("CLOSED")
      }))
  }
})

describe("HALF_OPEN: the probe timeout", () => {
  const options = { halfOpenAfter: "1 second", halfOpen: { timeout: "5 seconds" } } as const

  it.scoped("a probe that never settles: until the timeout others are rejected; at the timeout the next caller finds it re-opened", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes(options)
      const changes = yield* breaker.subscribe
      const hung = yield* start(breaker)
      expect(hung.admitted).toBe(true)
      yield* TestClock.adjust("4999 millis")
      expect(breaker.rejectsNow()).toBe(true)
      expect(retryAfterMillis(yield* rejectionOf(breaker))).toBe(0)
      expect(yield* breaker.state).toBe("HALF_OPEN")
      yield* TestClock.adjust("1 millis")
      // The timeout is decided by the next caller: rejectsNow lets it through to decide.
      expect(breaker.rejectsNow()).toBe(false)
      const error = yield* rejectionOf(breaker)
      expect(retryAfterMillis(error)).toBe(1_000) // a fresh break
      const snapshot = yield* breaker.snapshot
      expect(snapshot).toMatchObject({ state: "OPEN", opens: 2, retryAfterMillis: 1_000, consecutiveFailures: 2 })
      const seen = Chunk.toReadonlyArray(yield* Queue.takeAll(changes)).map((c) => `${c.from}->${c.to}@${c.at}`)
      expect(seen).toStrictEqual(["OPEN->HALF_OPEN@1000", "HALF_OPEN->OPEN@6000"])

      // The late success of the timed-out probe: its caller gets its value, the breaker ignores it.
      expect(yield* hung.succeed).toStrictEqual(Exit.succeed("probed"))
      expect(yield* breaker.snapshot).toMatchObject({ state: "OPEN", opens: 2, retryAfterMillis: 1_000 })
    }))

  it.effect("the late result of a timed-out probe does not count in the next half-open round either", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes(options)
      const hung = yield* start(breaker)
      yield* TestClock.adjust("5 seconds")
      yield* rejectionOf(breaker) // re-opened
      yield* TestClock.adjust("1 second")
      const next = yield* start(breaker)
      expect(next.admitted).toBe(true)
      yield* hung.succeed
      expect((yield* breaker.snapshot).probes).toStrictEqual({ permitted: 1, admitted: 1, succeeded: 0, failed: 0 })
      expect(yield* breaker.state).toBe("HALF_OPEN")
      yield* next.fail()
      expect(yield* breaker.state).toBe("OPEN")
    }))

  it.effect("with 2 probes at 1 of 2: one timed-out probe spends its slot as a failure; the other can still close it", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second", halfOpen: { probes: 2, successRatio: 0.5, timeout: "5 seconds" } })
      const hung = yield* start(breaker)
      yield* TestClock.adjust("3 seconds")
      const other = yield* start(breaker)
      expect(other.admitted).toBe(true)
      yield* TestClock.adjust("2 seconds") // the first probe has run 5 s, the second 2 s
      expect((yield* start(breaker)).admitted).toBe(false)
      expect((yield* breaker.snapshot).probes).toStrictEqual({ permitted: 2, admitted: 2, succeeded: 0, failed: 1 })
      expect(yield* breaker.state).toBe("HALF_OPEN")
      yield* other.succeed
      expect(yield* breaker.state).toBe("CLOSED")
      yield* hung.fail()
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 0 })
    }))

  it.effect("the default timeout is 30 seconds", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second" })
      const hung = yield* start(breaker)
      yield* TestClock.adjust("29999 millis")
      expect(yield* breaker.state).toBe("HALF_OPEN")
      expect(retryAfterMillis(yield* rejectionOf(breaker))).toBe(0)
      yield* TestClock.adjust("1 millis")
      expect(retryAfterMillis(yield* rejectionOf(breaker))).toBe(1_000)
      yield* hung.interrupt
    }))
})

describe("exponential breaks (backoff)", () => {
  /** From OPEN: the exact break, measured as the rejection's retryAfter, then whether a call 1 ms before is rejected. */
  const breakOf = (breaker: Breaker) =>
    Effect.gen(function*() {
      expect(yield* breaker.state).toBe("OPEN")
      const millis = retryAfterMillis(yield* rejectionOf(breaker))
      expect((yield* breaker.snapshot).breakMillis).toBe(millis)
      yield* TestClock.adjust(Duration.millis(millis - 1))
      expect(retryAfterMillis(yield* rejectionOf(breaker))).toBe(1)
      yield* TestClock.adjust("1 millis")
      return millis
    })

  it.effect("1 s, 2 s, 4 s, then capped at max (5 s) while the probes keep failing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second", backoff: { max: "5 seconds" } })
      yield* call(breaker, "F")
      const breaks: Array<number> = []
      for (let i = 0; i < 5; i++) {
        breaks.push(yield* breakOf(breaker))
        yield* call(breaker, "F") // the probe fails
      }
      expect(breaks).toStrictEqual([1_000, 2_000, 4_000, 5_000, 5_000])
      expect((yield* breaker.snapshot).opens).toBe(6)
    }))

  it.effect("factor 3: 1 s, 3 s, 9 s, capped at 10 s", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        failureThreshold: 1,
        halfOpenAfter: "1 second",
        backoff: { factor: 3, max: "10 seconds" }
      })
      yield* call(breaker, "F")
      const breaks: Array<number> = []
      for (let i = 0; i < 4; i++) {
        breaks.push(yield* breakOf(breaker))
        yield* call(breaker, "F")
      }
      expect(breaks).toStrictEqual([1_000, 3_000, 9_000, 10_000])
    }))

  it.effect("a probe timeout re-opens on the same backoff", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        failureThreshold: 1,
        halfOpenAfter: "1 second",
        halfOpen: { timeout: "1 second" },
        backoff: { max: "1 minute" }
      })
      yield* call(breaker, "F")
      expect(yield* breakOf(breaker)).toBe(1_000)
      const hung = yield* start(breaker)
      yield* TestClock.adjust("1 second")
      // the next caller decides the timeout: its rejection carries the new break
      expect(retryAfterMillis(yield* rejectionOf(breaker))).toBe(2_000)
      expect((yield* breaker.snapshot).breakMillis).toBe(2_000)
      yield* hung.interrupt
    }))

  it.effect("the streak continues after a short close, and starts again after the breaker stayed closed for resetAfter", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        failureThreshold: 1,
        halfOpenAfter: "1 second",
        backoff: { max: "1 minute", resetAfter: "10 seconds" }
      })
      yield* call(breaker, "F")
      expect(yield* breakOf(breaker)).toBe(1_000)
      yield* call(breaker, "F")
      expect(yield* breakOf(breaker)).toBe(2_000)
      yield* call(breaker, "S") // closes
      expect(yield* breaker.state).toBe("CLOSED")
      yield* TestClock.adjust("9999 millis") // closed for less than resetAfter
      yield* call(breaker, "F")
      expect(yield* breakOf(breaker)).toBe(4_000)
      yield* call(breaker, "S")
      yield* TestClock.adjust("10 seconds") // closed for resetAfter
      yield* call(breaker, "F")
      expect(yield* breakOf(breaker)).toBe(1_000)
      yield* call(breaker, "F")
      expect(yield* breakOf(breaker)).toBe(2_000)
    }))

  it.effect("after a long close, probes failing for longer than resetAfter still lengthen the break", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        failureThreshold: 1,
        halfOpenAfter: "1 second",
        backoff: { max: "1 minute", resetAfter: "2 seconds" }
      })
      yield* call(breaker, "F")
      yield* TestClock.adjust("1 second")
      yield* call(breaker, "S") // closed at t = 1 s
      yield* TestClock.adjust("1 minute")
      yield* call(breaker, "F") // closed for a minute: the streak starts again
      const breaks: Array<number> = []
      for (let i = 0; i < 4; i++) {
        breaks.push(yield* breakOf(breaker))
        yield* call(breaker, "F") // 1 s, 2 s, 4 s, 8 s since the close: all beyond resetAfter, none of them a close
      }
      expect(breaks).toStrictEqual([1_000, 2_000, 4_000, 8_000])
    }))

  it.effect("resetAfter defaults to max", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second", backoff: { max: "8 seconds" } })
      yield* call(breaker, "F")
      expect(yield* breakOf(breaker)).toBe(1_000)
      yield* call(breaker, "S")
      yield* TestClock.adjust("7999 millis")
      yield* call(breaker, "F")
      expect(yield* breakOf(breaker)).toBe(2_000)
      yield* call(breaker, "S")
      yield* TestClock.adjust("8 seconds")
      yield* call(breaker, "F")
      expect(yield* breakOf(breaker)).toBe(1_000)
    }))

  it.effect("without backoff every break is halfOpenAfter", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      yield* call(breaker, "F")
      for (let i = 0; i < 3; i++) {
        expect(yield* breakOf(breaker)).toBe(1_000)
        yield* call(breaker, "F")
      }
    }))
})

describe("isolate and reset", () => {
  it.scoped("isolate: every call is rejected with an infinite retryAfter, whatever the time; reset closes it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      const changes = yield* breaker.subscribe
      yield* breaker.isolate
      yield* breaker.isolate // no second transition
      expect(yield* breaker.state).toBe("ISOLATED")
      expect(breaker.rejectsNow()).toBe(true)
      for (const advance of ["0 millis", "1 hour", "100 days"] as const) {
        yield* TestClock.adjust(advance)
        const error = yield* rejectionOf(breaker, "charge")
        expect(Duration.equals(error.retryAfter, Duration.infinity)).toBe(true)
        expect(error.operation).toBe("charge")
        expect(error.message).toBe(`Circuit breaker is isolated: "charge" rejected until the breaker is reset`)
      }
      const snapshot = yield* breaker.snapshot
      expect(snapshot.state).toBe("ISOLATED")
      expect(Option.map(snapshot.retryAfter, Duration.isFinite)).toStrictEqual(Option.some(false))
      expect(snapshot.retryAfterMillis).toBeNull()
      yield* breaker.reset
      expect(yield* breaker.state).toBe("CLOSED")
      expect(yield* breaker.execute("get", Effect.succeed("ok"))).toBe("ok")
      const seen = Chunk.toReadonlyArray(yield* Queue.takeAll(changes)).map((c) => `${c.from}->${c.to}`)
      expect(seen).toStrictEqual(["CLOSED->ISOLATED", "ISOLATED->CLOSED"])
    }))

  it.scoped("isolating a HALF_OPEN breaker: the in-flight probe's result is ignored, it stays ISOLATED", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second" })
      const changes = yield* breaker.subscribe
      const probe = yield* start(breaker)
      yield* breaker.isolate
      expect(yield* probe.succeed).toStrictEqual(Exit.succeed("probed"))
      expect(yield* breaker.state).toBe("ISOLATED")
      yield* TestClock.adjust("1 minute")
      yield* rejectionOf(breaker)
      yield* breaker.reset
      const seen = Chunk.toReadonlyArray(yield* Queue.takeAll(changes)).map((c) => `${c.from}->${c.to}`)
      expect(seen).toStrictEqual(["OPEN->HALF_OPEN", "HALF_OPEN->ISOLATED", "ISOLATED->CLOSED"])
    }))

  it.effect("isolating an OPEN breaker holds it past its break; counted failures are kept until reset", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      yield* call(breaker, "F")
      yield* breaker.isolate
      yield* TestClock.adjust("10 seconds")
      expect(Duration.equals((yield* rejectionOf(breaker)).retryAfter, Duration.infinity)).toBe(true)
      expect((yield* breaker.snapshot).consecutiveFailures).toBe(1)
      yield* breaker.reset
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 0 })
      yield* call(breaker, "F")
      expect(yield* breaker.state).toBe("OPEN")
    }))

  it.effect("reset of a HALF_OPEN breaker: the probe's late failure is ignored", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second" })
      const probe = yield* start(breaker)
      yield* breaker.reset
      expect(yield* probe.fail()).toStrictEqual(Exit.fail(transient))
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 0, opens: 1 })
    }))
})

describe("snapshot", () => {
  it.effect("is plain JSON in every state (JSON.stringify works, retryAfterMillis for health endpoints)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.countWindow({ size: 4, failureRatio: 0.5, minimumCalls: 2 }),
        halfOpenAfter: "2 seconds",
        halfOpen: { probes: 2 }
      })
      const json = () => Effect.map(breaker.snapshot, (s) => JSON.parse(JSON.stringify(s)) as Record<string, unknown>)

      yield* call(breaker, "S")
      const closed = yield* json()
      expect(closed).toMatchObject({
        state: "CLOSED",
        consecutiveFailures: 0,
        opens: 0,
        retryAfterMillis: null,
        rule: "countWindow(size 4, ratio 0.5, minimum 2)",
        window: { calls: 1, failures: 0, slowCalls: 0, failureRatio: 0 },
        breakMillis: 2_000,
        probes: { permitted: 2, admitted: 0, succeeded: 0, failed: 0 }
      })

      yield* call(breaker, "F")
      yield* TestClock.adjust("500 millis")
      expect(yield* json()).toMatchObject({
        state: "OPEN",
        consecutiveFailures: 1,
        opens: 1,
        retryAfterMillis: 1_500,
        window: { calls: 2, failures: 1, slowCalls: 0, failureRatio: 0.5 }
      })
      const open = yield* breaker.snapshot
      expect(Option.map(open.retryAfter, Duration.toMillis)).toStrictEqual(Option.some(1_500))

      yield* TestClock.adjust("1500 millis")
      expect(yield* json()).toMatchObject({ state: "OPEN", retryAfterMillis: 0 }) // due, but nobody called yet
      const probe = yield* start(breaker)
      yield* call(breaker, "S")
      expect(yield* json()).toMatchObject({
        state: "HALF_OPEN",
        retryAfterMillis: null,
        probes: { permitted: 2, admitted: 2, succeeded: 1, failed: 0 }
      })
      yield* probe.succeed

      yield* breaker.isolate
      const isolated = yield* json()
      expect(isolated).toMatchObject({ state: "ISOLATED", retryAfterMillis: null })
      expect(Object.keys(isolated).sort()).toStrictEqual(
        ["breakMillis", "consecutiveFailures", "opens", "probes", "retryAfter", "retryAfterMillis", "rule", "state", "window"]
      )
    }))
})

describe("CircuitBreaker.protect", () => {
  it.effect("data-last (pipeable), with the default operation name", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 2, halfOpenAfter: "1 second" })
      expect(yield* Effect.succeed(1).pipe(CircuitBreaker.protect(breaker))).toBe(1)
      yield* Effect.either(Effect.fail(transient).pipe(CircuitBreaker.protect(breaker)))
      yield* Effect.either(Effect.fail(transient).pipe(CircuitBreaker.protect(breaker)))
      expect(yield* breaker.state).toBe("OPEN")
      const error = yield* Effect.flip(Effect.succeed(1).pipe(CircuitBreaker.protect(breaker)))
      expect(error).toBeInstanceOf(CircuitOpenError)
      expect((error as CircuitOpenError).operation).toBe("call")
    }))

  it.effect("data-last with an operation name", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1 })
      expect(yield* Effect.flip(Effect.fail(transient).pipe(CircuitBreaker.protect(breaker, "charge")))).toBe(transient)
      const error = yield* Effect.flip(Effect.succeed(1).pipe(CircuitBreaker.protect(breaker, "charge")))
      expect((error as CircuitOpenError).operation).toBe("charge")
    }))

  it.effect("data-first, with and without an operation name", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1 })
      expect(yield* CircuitBreaker.protect(Effect.succeed("a"), breaker)).toBe("a")
      expect(yield* CircuitBreaker.protect(Effect.succeed("b"), breaker, "charge")).toBe("b")
      yield* Effect.either(CircuitBreaker.protect(Effect.fail(transient), breaker, "charge"))
      const ran = yield* Ref.make(false)
      const error = yield* Effect.flip(CircuitBreaker.protect(Ref.set(ran, true), breaker, "refund"))
      expect((error as CircuitOpenError).operation).toBe("refund")
      expect(yield* Ref.get(ran)).toBe(false)
      expect(((yield* Effect.flip(CircuitBreaker.protect(Effect.void, breaker))) as CircuitOpenError).operation).toBe("call")
    }))
})

describe("the permit API (unsafeAdmit / unsafeSucceed / unsafeFail / unsafeRelease)", () => {
  const admit = (breaker: Breaker) => {
    const permit = breaker.unsafeAdmit("get")
    if (!CircuitBreaker.isPermit(permit)) throw new Error("expected a permit")
    return permit
  }

  it.effect("CLOSED: counted failures open it, a success resets the count, a release and an uncounted failure count nothing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 2, halfOpenAfter: "1 second" })
      breaker.unsafeFail(admit(breaker), transient, 0)
      breaker.unsafeSucceed(admit(breaker), 0)
      breaker.unsafeFail(admit(breaker), transient, 0)
      breaker.unsafeRelease(admit(breaker))
      breaker.unsafeFail(admit(breaker), permanent, 0)
      expect(breaker.unsafeSnapshot()).toMatchObject({ state: "CLOSED", consecutiveFailures: 1 })
      breaker.unsafeFail(admit(breaker), transient, 0)
      expect(breaker.unsafeState()).toBe("OPEN")
      const rejected = breaker.unsafeAdmit("get")
      expect(CircuitBreaker.isPermit(rejected)).toBe(false)
      const error = yield* Effect.flip(rejected as Effect.Effect<never, CircuitOpenError>)
      expect(error).toBeInstanceOf(CircuitOpenError)
      expect(retryAfterMillis(error)).toBe(1_000)
    }))

  it.effect("HALF_OPEN: the first admit is the probe; others are refused until it is released or settled", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second" })
      const probe = admit(breaker)
      expect(breaker.unsafeState()).toBe("HALF_OPEN")
      expect(CircuitBreaker.isPermit(breaker.unsafeAdmit("get"))).toBe(false)
      breaker.unsafeRelease(probe)
      const next = admit(breaker)
      expect(CircuitBreaker.isPermit(breaker.unsafeAdmit("get"))).toBe(false)
      breaker.unsafeSucceed(next, 0)
      expect(breaker.unsafeState()).toBe("CLOSED")
    }))

  it.effect("a probe permit failing re-opens it; settling it a second time changes nothing", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second", halfOpen: { probes: 2 } })
      const a = admit(breaker)
      const b = admit(breaker)
      breaker.unsafeSucceed(a, 0)
      breaker.unsafeSucceed(a, 0) // settled twice: the second is ignored, it does not close the breaker
      expect(breaker.unsafeSnapshot().probes).toStrictEqual({ permitted: 2, admitted: 2, succeeded: 1, failed: 0 })
      breaker.unsafeFail(b, transient, 0)
      expect(breaker.unsafeSnapshot()).toMatchObject({ state: "OPEN", opens: 2 })
    }))

  it.effect("a CLOSED permit settled in a later epoch (after the breaker opened and re-closed) is ignored", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      const old = admit(breaker)
      breaker.unsafeFail(admit(breaker), transient, 0)
      expect(breaker.unsafeState()).toBe("OPEN")
      breaker.unsafeFail(old, transient, 0) // while OPEN: ignored
      expect(breaker.unsafeSnapshot()).toMatchObject({ state: "OPEN", opens: 1 })
      yield* TestClock.adjust("1 second")
      breaker.unsafeSucceed(admit(breaker), 0)
      expect(breaker.unsafeState()).toBe("CLOSED")
      breaker.unsafeFail(old, transient, 0) // after the re-close: ignored (threshold 1 would re-open it)
      expect(breaker.unsafeSnapshot()).toMatchObject({ state: "CLOSED", consecutiveFailures: 0, opens: 1 })
    }))

  it.effect("a probe permit settled after reset or after its round ended is ignored", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbes({ halfOpenAfter: "1 second" })
      const probe = admit(breaker)
      yield* breaker.reset
      breaker.unsafeFail(probe, transient, 0)
      expect(breaker.unsafeSnapshot()).toMatchObject({ state: "CLOSED", consecutiveFailures: 0 })

      breaker.unsafeFail(admit(breaker), transient, 0)
      yield* TestClock.adjust("1 second")
      const first = admit(breaker)
      breaker.unsafeFail(first, transient, 0) // re-opens
      yield* TestClock.adjust("1 second")
      const second = admit(breaker) // a new round
      breaker.unsafeSucceed(first, 0) // the first round's permit: ignored
      expect(breaker.unsafeSnapshot()).toMatchObject({ state: "HALF_OPEN", probes: { admitted: 1, succeeded: 0 } })
      breaker.unsafeRelease(first) // ignored too: the slot of `second` stays taken
      expect(CircuitBreaker.isPermit(breaker.unsafeAdmit("get"))).toBe(false)
      breaker.unsafeSucceed(second, 0)
      expect(breaker.unsafeState()).toBe("CLOSED")
    }))

  it.effect("with a slowCalls rule, unsafeSucceed's duration decides whether the success was slow", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.slowCalls({ threshold: "1 second", rule: BreakerRule.consecutive(2) }) })
      expect(breaker.timed).toBe(true)
      breaker.unsafeSucceed(admit(breaker), 2_000)
      breaker.unsafeSucceed(admit(breaker), 10)
      breaker.unsafeSucceed(admit(breaker), 2_000)
      expect(breaker.unsafeState()).toBe("CLOSED")
      breaker.unsafeSucceed(admit(breaker), 2_000)
      expect(breaker.unsafeState()).toBe("OPEN")
    }))
})

describe("invalid half-open and backoff options die with an IllegalArgumentException", () => {
  const cases: ReadonlyArray<readonly [string, CircuitBreaker.Options, string]> = [
    ["probes 0", { halfOpen: { probes: 0 } }, "halfOpen.probes must be an integer >= 1, got 0"],
    ["probes 2.5", { halfOpen: { probes: 2.5 } }, "halfOpen.probes must be an integer >= 1, got 2.5"],
    ["successRatio 0", { halfOpen: { successRatio: 0 } }, "halfOpen.successRatio must be a number in (0, 1], got 0"],
    ["successRatio 1.5", { halfOpen: { successRatio: 1.5 } }, "halfOpen.successRatio must be a number in (0, 1], got 1.5"],
    ["successRatio NaN", { halfOpen: { successRatio: Number.NaN } }, "halfOpen.successRatio must be a number in (0, 1], got NaN"],
    ["timeout 0", { halfOpen: { timeout: 0 } }, "halfOpen.timeout must be a finite duration > 0"],
    ["timeout infinite", { halfOpen: { timeout: Duration.infinity } }, "halfOpen.timeout must be a finite duration > 0"],
    ["factor 0.5", { backoff: { factor: 0.5, max: "1 minute" } }, "backoff.factor must be a finite number >= 1, got 0.5"],
    ["factor Infinity", { backoff: { factor: Number.POSITIVE_INFINITY, max: "1 minute" } }, "backoff.factor must be a finite number >= 1"],
    ["max below halfOpenAfter", { halfOpenAfter: "10 seconds", backoff: { max: "5 seconds" } }, "backoff.max (5000 ms) must be >= halfOpenAfter (10000 ms)"],
    ["max infinite", { backoff: { max: Duration.infinity } }, "backoff.max must be a finite duration > 0"],
    ["resetAfter 0", { backoff: { max: "1 minute", resetAfter: 0 } }, "backoff.resetAfter must be a finite duration > 0"]
  ]
  for (const [name, options, message] of cases) {
    it.effect(name, () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(CircuitBreaker.make(options))
        const defect = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined
        expect(Cause.isIllegalArgumentException(defect)).toBe(true)
        expect((defect as Error).message).toContain(`@steadfast/resilience: CircuitBreaker ${message}`)
      }))
  }

  it.effect("the boundaries are valid: probes 1, successRatio 1, factor 1, max = halfOpenAfter", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        failureThreshold: 1,
        halfOpenAfter: "1 second",
        halfOpen: { probes: 1, successRatio: 1, timeout: "1 millis" },
        backoff: { factor: 1, max: "1 second" }
      })
      yield* call(breaker, "F")
      expect(retryAfterMillis(yield* rejectionOf(breaker))).toBe(1_000)
    }))
})

describe("HALF_OPEN under slowCalls: a slow probe is a failed probe", () => {
  it.effect("a probe that succeeds slowly re-opens the breaker (its caller still gets the value); a fast one closes it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.slowCalls({ threshold: "100 millis", rule: BreakerRule.consecutive(1) }),
        halfOpenAfter: "1 second"
      })
      const slow = Effect.as(TestClock.adjust("150 millis"), "slow")
      // A slow success while CLOSED opens it (consecutive(1) of slow calls).
      expect(yield* breaker.execute("get", slow)).toBe("slow")
      expect(yield* breaker.state).toBe("OPEN")
      yield* TestClock.adjust("1 second")
      // The probe answers, slowly: the caller gets the value, the breaker re-opens.
      expect(yield* breaker.execute("get", slow)).toBe("slow")
      expect(yield* breaker.state).toBe("OPEN")
      expect((yield* breaker.snapshot).opens).toBe(2)
      yield* TestClock.adjust("1 second")
      // A fast probe closes it.
      expect(yield* breaker.execute("get", Effect.succeed("fast"))).toBe("fast")
      expect(yield* breaker.state).toBe("CLOSED")
    }))
})
