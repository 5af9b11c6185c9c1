import { describe, expect, it } from "@effect/vitest"
import { Bulkhead, BulkheadRejectedError, isBulkheadRejectedError } from "@steadfast/resilience"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"

/** Yields until `condition()` holds (fibers forked before it get to run); fails the test after 10,000 yields. */
const until = (condition: () => boolean, what = "condition") =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000; i++) {
      if (condition()) return
      yield* Effect.yieldNow()
    }
    throw new Error(`never reached: ${what}`)
  })

/** The typed failure of an exit, if any. */
const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** An effect that records its start in `started`, then waits for `gate`. */
const gated = (started: Array<string>, id: string, gate: Deferred.Deferred<void>) =>
  Effect.zipRight(Effect.sync(() => started.push(id)), Deferred.await(gate))

const defectOf = (effect: Effect.Effect<unknown, unknown>) =>
  Effect.map(Effect.exit(effect), (exit) => Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined)

describe("Bulkhead", () => {
  it.effect("exact limits: N run, M wait, the (N+M+1)th is rejected at once with the limits; nothing else ran", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 3, maxQueue: 2, name: "db" })
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      const fibers: Array<Fiber.RuntimeFiber<void, BulkheadRejectedError>> = []
      for (let i = 0; i < 5; i++) fibers.push(yield* Effect.fork(bulkhead.execute(gated(started, `c${i}`, gate))))
      yield* until(() => bulkhead.unsafeSnapshot().queued === 2, "2 queued")
      expect(started).toStrictEqual(["c0", "c1", "c2"])
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 3, queued: 2, rejected: 0 })

      // The 6th is rejected without waiting (no fork, no clock) and without running.
      const ran: Array<string> = []
      const error = yield* Effect.flip(bulkhead.execute(Effect.sync(() => ran.push("c5"))))
      expect(ran).toStrictEqual([])
      expect(error).toBeInstanceOf(BulkheadRejectedError)
      expect(isBulkheadRejectedError(error)).toBe(true)
      expect(error).toMatchObject({
        _tag: "BulkheadRejectedError",
        bulkhead: "db",
        reason: "queue_full",
        maxConcurrent: 3,
        maxQueue: 2,
        message: "db is full (maxConcurrent 3, maxQueue 2)"
      })
      expect(Duration.isFinite(error.queueTimeout)).toBe(false)
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 3, queued: 2, rejected: 1, timedOut: 0 })

      yield* Deferred.succeed(gate, undefined)
      for (const fiber of fibers) expect(yield* Fiber.await(fiber)).toStrictEqual(Exit.void)
      expect(started).toStrictEqual(["c0", "c1", "c2", "c3", "c4"])
      expect(yield* bulkhead.snapshot).toStrictEqual({
        name: "db",
        maxConcurrent: 3,
        maxQueue: 2,
        queueTimeout: Duration.infinity,
        running: 0,
        queued: 0,
        rejected: 1,
        timedOut: 0
      })
    }))

  it.effect("default maxQueue is 0: with every slot taken the next call is rejected at once", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      const gate = yield* Deferred.make<void>()
      const first = yield* Effect.fork(bulkhead.execute(Deferred.await(gate)))
      yield* until(() => bulkhead.unsafeSnapshot().running === 1)
      const error = yield* Effect.flip(bulkhead.execute(Effect.void))
      expect(error).toMatchObject({ bulkhead: "bulkhead", reason: "queue_full", maxConcurrent: 1, maxQueue: 0 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      // a slot is free again
      expect(yield* bulkhead.execute(Effect.succeed(42))).toBe(42)
    }))

  it.effect("FIFO: queued calls get freed slots in arrival order, and a newcomer never overtakes a waiter", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 2, maxQueue: 10 })
      const order: Array<string> = []
      const gates = new Map<string, Deferred.Deferred<void>>()
      const task = (id: string) =>
        Effect.flatMap(Deferred.make<void>(), (gate) => {
          gates.set(id, gate)
          return gated(order, id, gate)
        })
      const fibers = [yield* Effect.fork(bulkhead.execute(task("r0"))), yield* Effect.fork(bulkhead.execute(task("r1")))]
      yield* until(() => bulkhead.unsafeSnapshot().running === 2)
      // queue q0..q5, one at a time, so arrival order is known
      for (let i = 0; i < 6; i++) {
        fibers.push(yield* Effect.fork(bulkhead.execute(task(`q${i}`))))
        yield* until(() => bulkhead.unsafeSnapshot().queued === i + 1)
      }
      const finish = (id: string) => Effect.suspend(() => Deferred.succeed(gates.get(id)!, undefined))
      // r1 ends: q0 takes its slot. A newcomer arriving now must queue behind q1..q5.
      yield* finish("r1")
      yield* until(() => order.length === 3)
      fibers.push(yield* Effect.fork(bulkhead.execute(task("late"))))
      yield* until(() => bulkhead.unsafeSnapshot().queued === 6)
      expect(order).toStrictEqual(["r0", "r1", "q0"])
      for (const id of ["r0", "q0", "q1", "q2", "q3", "q4", "q5"]) {
        yield* until(() => gates.has(id), `${id} started`)
        yield* finish(id)
      }
      yield* until(() => gates.has("late"))
      yield* finish("late")
      for (const fiber of fibers) yield* Fiber.join(fiber)
      expect(order).toStrictEqual(["r0", "r1", "q0", "q1", "q2", "q3", "q4", "q5", "late"])
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 0, queued: 0, rejected: 0 })
    }))

  it.effect("an interrupted waiter leaves the queue (its place is free) and never runs; the others keep their order", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 2 })
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      const a = yield* Effect.fork(bulkhead.execute(gated(started, "a", gate)))
      yield* until(() => started.length === 1)
      const b = yield* Effect.fork(bulkhead.execute(gated(started, "b", gate)))
      yield* until(() => bulkhead.unsafeSnapshot().queued === 1)
      const c = yield* Effect.fork(bulkhead.execute(gated(started, "c", gate)))
      yield* until(() => bulkhead.unsafeSnapshot().queued === 2)

      yield* Fiber.interrupt(b)
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 1, queued: 1, rejected: 0 })
      // b's place in the queue is free again: d can wait, e cannot
      const d = yield* Effect.fork(bulkhead.execute(gated(started, "d", gate)))
      yield* until(() => bulkhead.unsafeSnapshot().queued === 2)
      expect(failureOf(yield* Effect.exit(bulkhead.execute(Effect.void)))).toMatchObject({ reason: "queue_full" })

      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(a)
      yield* Fiber.join(c)
      yield* Fiber.join(d)
      expect(started).toStrictEqual(["a", "c", "d"])
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 0, queued: 0, rejected: 1 })
    }))

  it.effect("an interrupted running call gives its slot to the oldest waiter", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 5 })
      const released: Array<string> = []
      const started: Array<string> = []
      const forever = yield* Effect.fork(
        bulkhead.execute(
          Effect.zipRight(Effect.sync(() => started.push("stuck")), Effect.never).pipe(
            Effect.ensuring(Effect.sync(() => released.push("stuck")))
          )
        )
      )
      yield* until(() => started.length === 1)
      const gate = yield* Deferred.make<void>()
      const next = yield* Effect.fork(bulkhead.execute(gated(started, "next", gate)))
      const after = yield* Effect.fork(bulkhead.execute(gated(started, "after", gate)))
      yield* until(() => bulkhead.unsafeSnapshot().queued === 2)

      yield* Fiber.interrupt(forever)
      expect(released).toStrictEqual(["stuck"])
      yield* until(() => started.length === 2)
      expect(started).toStrictEqual(["stuck", "next"])
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 1, queued: 1 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(next)
      yield* Fiber.join(after)
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 0, queued: 0 })
    }))

  it.effect("failures and defects of the effect pass through unchanged and give the slot back", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      expect(yield* Effect.flip(bulkhead.execute(Effect.fail("boom" as const)))).toBe("boom")
      expect(bulkhead.unsafeSnapshot().running).toBe(0)
      const defect = new Error("bug")
      expect(yield* defectOf(bulkhead.execute(Effect.die(defect)))).toBe(defect)
      expect(bulkhead.unsafeSnapshot().running).toBe(0)
      expect(yield* bulkhead.execute(Effect.succeed("ok"))).toBe("ok")
    }))

  it.effect("limit is dual: data-first and pipeable forms run through the same bulkhead", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      expect(yield* Bulkhead.limit(Effect.succeed(1), bulkhead)).toBe(1)
      expect(yield* Effect.succeed(2).pipe(Bulkhead.limit(bulkhead))).toBe(2)
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(Deferred.await(gate).pipe(Bulkhead.limit(bulkhead)))
      yield* until(() => bulkhead.unsafeSnapshot().running === 1)
      expect(yield* Effect.flip(Bulkhead.limit(Effect.void, bulkhead))).toMatchObject({ reason: "queue_full" })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
    }))

  it.effect("queue timeout (TestClock): a waiter is rejected exactly at queueTimeout with reason queue_timeout", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 3, queueTimeout: "1 second", name: "redis" })
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      const holder = yield* Effect.fork(bulkhead.execute(gated(started, "holder", gate)))
      yield* until(() => started.length === 1)
      const waiter = yield* Effect.fork(bulkhead.execute(gated(started, "waiter", gate)))
      yield* until(() => bulkhead.unsafeSnapshot().queued === 1)
      yield* TestClock.adjust("999 millis")
      expect(waiter.unsafePoll()).toBeNull()
      // a second waiter joins at t = 999 ms: its own timeout ends at 1999 ms
      const second = yield* Effect.fork(bulkhead.execute(gated(started, "second", gate)))
      yield* until(() => bulkhead.unsafeSnapshot().queued === 2)
      yield* TestClock.adjust("1 millis")
      const error = failureOf(yield* Fiber.await(waiter))
      expect(error).toMatchObject({
        _tag: "BulkheadRejectedError",
        bulkhead: "redis",
        reason: "queue_timeout",
        maxConcurrent: 1,
        maxQueue: 3,
        message: "redis: no slot within the 1s queue timeout (maxConcurrent 1, maxQueue 3)"
      })
      expect(Duration.toMillis(error!.queueTimeout)).toBe(1_000)
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 1, queued: 1, rejected: 1, timedOut: 1 })
      // the holder finishes before the second's timeout: the second runs
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(second)
      expect(started).toStrictEqual(["holder", "second"])
      yield* TestClock.adjust("10 seconds")
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 0, queued: 0, rejected: 1, timedOut: 1 })
    }))

  it.effect("a slot freed in the same instant a wait times out is never lost", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 1, queueTimeout: "1 second" })
      // the holder ends at t = 1 s, exactly when the waiter's timeout fires
      const holder = yield* Effect.fork(bulkhead.execute(Effect.sleep("1 second")))
      yield* until(() => bulkhead.unsafeSnapshot().running === 1)
      const waiter = yield* Effect.fork(bulkhead.execute(Effect.succeed("ran")))
      yield* until(() => bulkhead.unsafeSnapshot().queued === 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(holder)
      const exit = yield* Fiber.await(waiter)
      // either outcome is acceptable; a leaked or doubled slot is not
      if (Exit.isFailure(exit)) expect(failureOf(exit)).toMatchObject({ reason: "queue_timeout" })
      else expect(exit).toStrictEqual(Exit.succeed("ran"))
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 0, queued: 0 })
      expect(yield* bulkhead.execute(Effect.succeed(1))).toBe(1)
    }))

  it.effect("1,000 fibers through 7 slots: never more than 7 run at once, all 7 are used, no slot leaks", () =>
    Effect.gen(function*() {
      const N = 7
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: N, maxQueue: 1_000 })
      let inFlight = 0
      let maxInFlight = 0
      let maxReported = 0
      let completed = 0
      const work = (i: number) =>
        Effect.gen(function*() {
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          maxReported = Math.max(maxReported, bulkhead.unsafeSnapshot().running)
          for (let y = 0; y < i % 4; y++) yield* Effect.yieldNow()
          completed++
        }).pipe(Effect.ensuring(Effect.sync(() => inFlight--)))
      yield* Effect.forEach(Array.from({ length: 1_000 }, (_, i) => i), (i) => bulkhead.execute(work(i)), {
        concurrency: "unbounded",
        discard: true
      })
      expect({ completed, maxInFlight, maxReported, inFlight }).toStrictEqual({
        completed: 1_000,
        maxInFlight: N,
        maxReported: N,
        inFlight: 0
      })
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 0, queued: 0, rejected: 0 })
    }))

  it.effect("1,000 fibers with a short queue and random interruptions: limits hold, every call is accounted for", () =>
    Effect.gen(function*() {
      const N = 5
      const M = 20
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: N, maxQueue: M })
      let inFlight = 0
      let maxInFlight = 0
      let maxQueued = 0
      let seed = 42
      const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648
      const work = (yields: number) =>
        Effect.gen(function*() {
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          for (let y = 0; y < yields; y++) yield* Effect.yieldNow()
        }).pipe(Effect.ensuring(Effect.sync(() => inFlight--)))
      const fibers: Array<Fiber.RuntimeFiber<void, BulkheadRejectedError>> = []
      for (let i = 0; i < 1_000; i++) {
        fibers.push(yield* Effect.fork(bulkhead.execute(work(Math.floor(random() * 6)))))
        maxQueued = Math.max(maxQueued, bulkhead.unsafeSnapshot().queued)
        if (random() < 0.3) yield* Effect.yieldNow()
        // interrupt a random earlier fiber (queued, running or done)
        if (random() < 0.2) yield* Fiber.interrupt(fibers[Math.floor(random() * fibers.length)]!)
      }
      let succeeded = 0
      let rejected = 0
      let interrupted = 0
      for (const fiber of fibers) {
        const exit = yield* Fiber.await(fiber)
        if (Exit.isSuccess(exit)) succeeded++
        else if (Cause.isInterruptedOnly(exit.cause)) interrupted++
        else if (isBulkheadRejectedError(failureOf(exit))) rejected++
      }
      expect(maxInFlight).toBeLessThanOrEqual(N)
      expect(maxQueued).toBeLessThanOrEqual(M)
      expect(succeeded + rejected + interrupted).toBe(1_000)
      expect(rejected).toBeGreaterThan(0)
      expect(interrupted).toBeGreaterThan(0)
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 0, queued: 0, rejected, timedOut: 0 })
      // all N slots are still usable
      const gate = yield* Deferred.make<void>()
      const holders: Array<Fiber.RuntimeFiber<void, BulkheadRejectedError>> = []
      for (let i = 0; i < N; i++) holders.push(yield* Effect.fork(bulkhead.execute(Deferred.await(gate))))
      yield* until(() => bulkhead.unsafeSnapshot().running === N)
      yield* Deferred.succeed(gate, undefined)
      for (const holder of holders) yield* Fiber.join(holder)
    }))

  it.effect("Bulkhead.layer provides the Bulkhead tag", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.Bulkhead
      expect(bulkhead.unsafeSnapshot()).toMatchObject({ maxConcurrent: 4, maxQueue: 8 })
      expect(yield* bulkhead.execute(Effect.succeed("x"))).toBe("x")
    }).pipe(Effect.provide(Bulkhead.layer({ maxConcurrent: 4, maxQueue: 8 }))))

  it.effect("invalid options die (make) or throw (unsafeMake) with IllegalArgumentException naming the option", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Bulkhead.Options, string]> = [
        [{ maxConcurrent: 0 }, "Bulkhead maxConcurrent must be an integer >= 1, got 0"],
        [{ maxConcurrent: 1.5 }, "Bulkhead maxConcurrent must be an integer >= 1, got 1.5"],
        [{ maxConcurrent: Number.POSITIVE_INFINITY }, "Bulkhead maxConcurrent must be an integer >= 1, got Infinity"],
        [{} as Bulkhead.Options, "Bulkhead maxConcurrent must be an integer >= 1, got undefined"],
        [{ maxConcurrent: 1, maxQueue: -1 }, "Bulkhead maxQueue must be an integer >= 0, got -1"],
        [{ maxConcurrent: 1, maxQueue: Number.NaN }, "Bulkhead maxQueue must be an integer >= 0, got NaN"],
        [{ maxConcurrent: 1, queueTimeout: 0 }, "Bulkhead queueTimeout must be a duration > 0, got 0"],
        [{ maxConcurrent: 1, queueTimeout: -1 }, "Bulkhead queueTimeout must not be negative or NaN, got -1"],
        [
          { maxConcurrent: 1, queueTimeout: "soon" as Duration.DurationInput },
          "Bulkhead queueTimeout is not a valid duration: soon"
        ]
      ]
      for (const [options, message] of cases) {
        const defect = yield* defectOf(Bulkhead.make(options))
        expect(Cause.isIllegalArgumentException(defect), message).toBe(true)
        expect((defect as Error).message).toBe(`@steadfast/resilience: ${message}`)
        expect(() => Bulkhead.unsafeMake(options)).toThrow(`@steadfast/resilience: ${message}`)
      }
      // boundaries that are valid
      expect(Bulkhead.unsafeMake({ maxConcurrent: 1, maxQueue: 0, queueTimeout: "1 millis" }).unsafeSnapshot())
        .toMatchObject({ maxConcurrent: 1, maxQueue: 0 })
    }))
})
