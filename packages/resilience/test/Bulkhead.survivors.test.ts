/**
 * Behaviour the mutation run found untested in `internal/bulkhead.ts` (MUTATION.md, resilience, run A): the `name`
 * option's validation, a wait that times out in the same step a slot is handed to it, and a call that finds every
 * slot taken but sees one freed before it would queue. Also a waiter interrupted in the same step its slot is handed
 * over (the branch whose mutants are equivalent: the test shows the behaviour they keep).
 */
import { describe, expect, it } from "@effect/vitest"
import { Bulkhead, BulkheadRejectedError } from "@steadfast/resilience"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"

/** Yields until `condition()` holds (fibers forked before it get to run); fails the test after 10,000 yields. */
const until = (condition: () => boolean, what = "condition") =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000; i++) {
      if (condition()) return
      yield* Effect.yieldNow()
    }
    throw new Error(`never reached: ${what}`)
  })

/** A clock standing at 0 whose sleeps end only when the test ends them (`sleeps`, in the order they began). */
const manualClock = () => {
  const sleeps: Array<Deferred.Deferred<void>> = []
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => 0,
    unsafeCurrentTimeNanos: () => BigInt(0),
    currentTimeMillis: Effect.succeed(0),
    currentTimeNanos: Effect.succeed(BigInt(0)),
    sleep: () =>
      Effect.suspend(() => {
        const sleep = Deferred.unsafeMake<void>(FiberId.none)
        sleeps.push(sleep)
        return Deferred.await(sleep)
      })
  }
  return { clock, sleeps }
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

describe("Bulkhead (mutation survivors)", () => {
  it.effect("a name that is not a string is rejected like the other options", () =>
    Effect.gen(function*() {
      const options = { maxConcurrent: 1, name: 42 as unknown as string }
      const exit = yield* Effect.exit(Bulkhead.make(options))
      const defect = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined
      expect(Cause.isIllegalArgumentException(defect)).toBe(true)
      expect((defect as Error).message).toBe("@steadfast/resilience: Bulkhead name must be a string, got 42")
      expect(() => Bulkhead.unsafeMake(options)).toThrow("@steadfast/resilience: Bulkhead name must be a string, got 42")
    }))

  it.effect("a wait whose timeout fires in the same step its slot is handed over: it runs, or its rejection is counted", () =>
    Effect.gen(function*() {
      // TestClock settles every fiber between two timers, even two due at the same instant, so the holder's end and
      // the waiter's queue timeout are made to happen in one step here: the waiter's clock is a manual one whose
      // sleeps the test ends itself. Both orders of the two ends.
      for (const timeoutFirst of [true, false]) {
        const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 1, queueTimeout: "1 second" })
        const gate = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(bulkhead.execute(Deferred.await(gate)))
        yield* until(() => bulkhead.unsafeSnapshot().running === 1)
        const { clock, sleeps } = manualClock()
        const ran: Array<string> = []
        const waiter = yield* Effect.fork(
          Effect.withClock(bulkhead.execute(Effect.sync(() => ran.push("waiter"))), clock)
        )
        yield* until(() => bulkhead.unsafeSnapshot().queued === 1 && sleeps.length === 1, "the waiter's timer")
        yield* Effect.sync(() => {
          const timeout = () => Deferred.unsafeDone(sleeps[0]!, Exit.void)
          const holderEnds = () => Deferred.unsafeDone(gate, Exit.void)
          for (const end of timeoutFirst ? [timeout, holderEnds] : [holderEnds, timeout]) end()
        })
        yield* Fiber.join(holder)
        const exit = yield* Fiber.await(waiter)
        const error = failureOf(exit)
        if (error !== undefined) {
          // a caller that gets a queue_timeout is one the snapshot counts, and its effect never ran
          expect(error).toBeInstanceOf(BulkheadRejectedError)
          expect(error).toMatchObject({ reason: "queue_timeout" })
          expect(ran).toStrictEqual([])
          expect(bulkhead.unsafeSnapshot()).toMatchObject({ rejected: 1, timedOut: 1 })
        } else {
          expect(exit).toStrictEqual(Exit.succeed(1))
          expect(ran).toStrictEqual(["waiter"])
          expect(bulkhead.unsafeSnapshot()).toMatchObject({ rejected: 0, timedOut: 0 })
        }
        expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 0, queued: 0 })
      }
    }))

  it.effect("a waiter interrupted in the same step its slot is handed over never runs; the slot goes to the next", () =>
    Effect.gen(function*() {
      for (const interruptFirst of [true, false]) {
        const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 2 })
        const gate = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(bulkhead.execute(Deferred.await(gate)))
        yield* until(() => bulkhead.unsafeSnapshot().running === 1)
        const ran: Array<string> = []
        const first = yield* Effect.fork(bulkhead.execute(Effect.sync(() => ran.push("first"))))
        yield* until(() => bulkhead.unsafeSnapshot().queued === 1)
        const second = yield* Effect.fork(bulkhead.execute(Effect.sync(() => ran.push("second"))))
        yield* until(() => bulkhead.unsafeSnapshot().queued === 2)
        yield* Effect.sync(() => {
          const interrupt = () => first.unsafeInterruptAsFork(FiberId.none)
          const holderEnds = () => Deferred.unsafeDone(gate, Exit.void)
          for (const end of interruptFirst ? [interrupt, holderEnds] : [holderEnds, interrupt]) end()
        })
        yield* Fiber.join(holder)
        expect(Exit.isInterrupted(yield* Fiber.await(first))).toBe(true)
        expect(yield* Fiber.join(second)).toBe(1)
        expect(ran).toStrictEqual(["second"])
        expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 0, queued: 0, rejected: 0 })
      }
    }))

  it.effect("a call that finds every slot taken but sees one freed before it queues takes it (never stranded)", () =>
    Effect.gen(function*() {
      // The caller yields every 64 operations, after `j` operations of its own first: over j, its first yield falls
      // at every point of its admission, including between the "every slot is taken" check and the queue. The
      // holder's end is let in first, so it runs (and frees the slot) during that yield.
      for (let j = 0; j < 64; j++) {
        const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 1 })
        const gate = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(bulkhead.execute(Deferred.await(gate)))
        yield* until(() => bulkhead.unsafeSnapshot().running === 1)
        let before: Effect.Effect<void> = Effect.void
        for (let i = 0; i < j; i++) before = Effect.zipRight(before, Effect.void)
        const caller = yield* Effect.fork(
          Effect.withMaxOpsBeforeYield(Effect.zipRight(before, bulkhead.execute(Effect.succeed(j))), 64)
        )
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
        yield* until(() => caller.unsafePoll() !== null, `the caller ends (j = ${j})`)
        expect(caller.unsafePoll()).toStrictEqual(Exit.succeed(j))
        expect(bulkhead.unsafeSnapshot()).toMatchObject({ running: 0, queued: 0, rejected: 0 })
      }
    }))
})
