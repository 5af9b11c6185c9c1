/**
 * The deadline sweeper (internal/deadlines.ts) beyond Deadlines.test.ts, found by mutation testing (MUTATION.md,
 * "Redis"), under `TestClock`: the tick's bounds (5 ms for short timeouts, 100 ms for long ones) decide when a call
 * fails, a call whose promise fails or whose `start` throws fails with `onError` and is not failed again at its
 * deadline, a late answer is dropped, calls of several earlier timeouts are all expired, and the span specs name
 * the operation and the command.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as Deadlines from "../src/internal/deadlines.js"

const never = () => new Promise<never>(() => {})
/** A call that never settles, forked; it fails with "timeout" at its deadline. */
const call = (deadlines: Deadlines.Deadlines) =>
  Effect.tap(
    Effect.fork(Effect.flip(deadlines.run(never, () => "error" as const, () => "timeout" as const))),
    () => Effect.yieldNow()
  )

/** Running just before `from` (ms on the test clock), done at `to`. */
const finishesWithin = (fiber: Fiber.RuntimeFiber<unknown, unknown>, from: number, to: number) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(from - 1)
    expect(Option.isNone(yield* Fiber.poll(fiber)), `running at ${from - 1} ms`).toBe(true)
    yield* TestClock.setTime(to)
    expect(Option.isSome(yield* Fiber.poll(fiber)), `done at ${to} ms`).toBe(true)
  })

describe("Deadlines: the tick's bounds", () => {
  it.scoped("60 ms: the tick is at least 5 ms, so the call fails at 50 ms (timeout - 2 ticks)", () =>
    Effect.gen(function*() {
      const fiber = yield* call(yield* Deadlines.make(Duration.millis(60)))
      yield* finishesWithin(fiber, 50, 50)
    }))

  it.scoped("4 s: the tick is at most 100 ms, so the call fails at 3800 ms", () =>
    Effect.gen(function*() {
      const fiber = yield* call(yield* Deadlines.make(Duration.seconds(4)))
      yield* finishesWithin(fiber, 3800, 3800)
    }))

  it.scoped("1 s: a tick of 50 ms, at 900 ms; changed to 60 ms, the next call fails 50 ms after it started", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.seconds(1))
      const first = yield* call(deadlines)
      yield* finishesWithin(first, 900, 900)
      deadlines.setTimeout(Duration.millis(60))
      const second = yield* call(deadlines)
      yield* finishesWithin(second, 950, 950)
      expect(yield* Fiber.join(second)).toBe("timeout")
    }))

  it.scoped("a timeout shorter than two ticks: the call fails at the first sweep", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(4))
      const fiber = yield* call(deadlines)
      yield* finishesWithin(fiber, 5, 5)
    }))
})

describe("Deadlines.run: settling", () => {
  it.scoped("a call answered in time succeeds, and onTimeout is never called for it afterwards", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(100))
      const timeouts: Array<number> = []
      const value = yield* deadlines.run(() => Promise.resolve("v"), () => "error", () => (timeouts.push(1), "timeout"))
      expect(value).toBe("v")
      yield* TestClock.adjust("1 second")
      expect(timeouts).toEqual([])
    }))


  it.scoped("a start that throws fails with onError at once, and never with onTimeout", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(100))
      const timeouts: Array<number> = []
      const error = yield* Effect.flip(deadlines.run(() => {
        throw new Error("refused")
      }, (e) => `error: ${(e as Error).message}`, () => (timeouts.push(1), "timeout")))
      expect(error).toBe("error: refused")
      yield* TestClock.adjust("1 second")
      expect(timeouts).toEqual([])
    }))

  it.scoped("a rejected promise fails with onError; its deadline does not fire later", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(100))
      const timeouts: Array<number> = []
      const error = yield* Effect.flip(
        deadlines.run(() => Promise.reject(new Error("reset")), (e) => `error: ${(e as Error).message}`, () => (timeouts.push(1), "timeout"))
      )
      expect(error).toBe("error: reset")
      yield* TestClock.adjust("1 second")
      expect(timeouts).toEqual([])
    }))

  it.scoped("an answer after the deadline is dropped: the caller got the timeout, once", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(100))
      let resolve: (value: string) => void = () => {}
      let reject: (error: Error) => void = () => {}
      const errors: Array<string> = []
      const late = yield* Effect.fork(Effect.either(deadlines.run(() => new Promise<string>((r) => (resolve = r)), () => "error", () => "timeout")))
      const lateFailure = yield* Effect.fork(Effect.either(deadlines.run(
        () => new Promise<string>((_, r) => (reject = r)),
        () => (errors.push("error"), "error"),
        () => "timeout"
      )))
      yield* Effect.yieldNow()
      yield* TestClock.adjust("100 millis")
      const result = yield* Fiber.join(late)
      expect(result._tag === "Left" && result.left).toBe("timeout")
      expect((yield* Fiber.join(lateFailure))._tag).toBe("Left")
      resolve("value")
      reject(new Error("late"))
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
      expect(errors).toEqual([]) // onError is not called for a failure after the deadline
      // track/untrack directly: an expired entry cannot be untracked, a live one can, once.
      const expired: Array<number> = []
      const entry = deadlines.track(() => expired.push(1))
      yield* TestClock.adjust("100 millis")
      expect(expired).toEqual([1])
      expect(deadlines.untrack(entry)).toBe(false)
      const live = deadlines.track(() => expired.push(2))
      expect(deadlines.untrack(live)).toBe(true)
      expect(deadlines.untrack(live)).toBe(false)
      yield* TestClock.adjust("1 second")
      expect(expired).toEqual([1])
    }))
})

describe("Deadlines: several generations", () => {
  it.scoped("calls of three successive timeouts each fail at their own deadline; an emptied generation is dropped", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(1000))
      const a = yield* call(deadlines) // 900
      deadlines.setTimeout(Duration.millis(500))
      const b = yield* call(deadlines) // 450
      deadlines.setTimeout(Duration.millis(2000))
      const c = yield* call(deadlines) // 1800
      // Setting the same timeout again starts no generation and changes nothing.
      deadlines.setTimeout(Duration.millis(2000))
      expect(Duration.toMillis(deadlines.timeout())).toBe(2000)
      yield* finishesWithin(b, 450, 500)
      expect(Option.isNone(yield* Fiber.poll(a))).toBe(true)
      yield* finishesWithin(a, 900, 1000)
      expect(Option.isNone(yield* Fiber.poll(c))).toBe(true)
      yield* finishesWithin(c, 1800, 1900)
      // After the older generations emptied, new calls still expire.
      const d = yield* call(deadlines)
      yield* finishesWithin(d, 1900 + 1800 - 100, 1900 + 1800 + 100)
    }))
})

describe("Deadlines: the list of calls in flight", () => {
  it.scoped("calls untracked from the middle, the head and the tail leave the others in deadline order; `tracked` says which are in", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(1000)) // expires at 900
      const expired: Array<string> = []
      const entries = new Map<string, Deadlines.Pending>()
      for (const name of ["a", "b", "c", "d", "e"]) {
        entries.set(name, deadlines.track(() => expired.push(name)))
        yield* TestClock.adjust("10 millis")
      }
      for (const name of ["c", "a", "e"]) expect(deadlines.untrack(entries.get(name)!)).toBe(true)
      expect([...entries].map(([name, entry]) => `${name}:${entry.tracked}`)).toEqual(["a:false", "b:true", "c:false", "d:true", "e:false"])
      yield* TestClock.setTime(100)
      const late = deadlines.track(() => expired.push("f")) // the list's new tail, due at 1000 ms
      yield* TestClock.setTime(905) // b (due at 910) is not yet
      expect(expired).toEqual([])
      yield* TestClock.setTime(950)
      expect(expired).toEqual(["b", "d"])
      expect([entries.get("b")!.tracked, entries.get("d")!.tracked, late.tracked]).toEqual([false, false, true])
      yield* TestClock.setTime(1000)
      expect(expired).toEqual(["b", "d", "f"])
      expect(late.tracked).toBe(false)
    }))

  it.scoped("a call expiring settles the next one (its `expire` untracks it): the sweep goes on from the list as it is then", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(1000))
      const expired: Array<string> = []
      let second: Deadlines.Pending | undefined
      deadlines.track(() => {
        expired.push("first")
        deadlines.untrack(second!) // e.g. a batch whose failure settles another caller's call
      })
      second = deadlines.track(() => expired.push("second"))
      deadlines.track(() => expired.push("third"))
      yield* TestClock.adjust("1 second")
      expect(expired).toEqual(["first", "third"])
    }))

  it.scoped("an entry out of the list, untracked or expired, holds nothing: what its `expire` captured can be collected while the entry is still referenced", () =>
    Effect.gen(function*() {
      // A batch keeps its entry until its reply settles; the entry must not keep the batch's callers alive (a `Set`
      // of entries kept them reachable from its replaced tables: benchmarks/README.md, session 12).
      setFlagsFromString("--expose-gc")
      const gc = runInNewContext("gc") as () => void
      const deadlines = yield* Deadlines.make(Duration.millis(1000))
      const track = () => {
        const callers = { waiters: new Array(1000).fill("caller") }
        const entry = deadlines.track(() => callers.waiters.push("expired"))
        return { entry, ref: new WeakRef(callers) }
      }
      const untracked = track()
      const expired = track()
      expect(deadlines.untrack(untracked.entry)).toBe(true)
      yield* TestClock.adjust("950 millis")
      const live = track() // due at 1850 ms
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 0))) // a WeakRef holds until its job ends
      gc()
      expect(untracked.ref.deref(), "untracked").toBeUndefined()
      expect(expired.ref.deref(), "expired").toBeUndefined()
      // A call still tracked keeps what its `expire` needs (the callers it fails at the deadline).
      expect(live.ref.deref(), "tracked").toBeDefined()
      // The entries themselves are still referenced here (as a batch holds its own until its reply).
      expect([untracked.entry.tracked, expired.entry.tracked, live.entry.tracked]).toEqual([false, false, true])
    }))
})

describe("Deadlines.spanSpecs and socketTimeoutOf", () => {
  it("a span per operation, redis.<operation>, its command in upper case, built once; coalesced calls name the batch's command", () => {
    const specs = Deadlines.spanSpecs({ "db.system.name": "redis", "server.port": 6379 })
    const get = specs.of("get")
    expect(get).toEqual({
      name: "redis.get",
      attributes: { "db.system.name": "redis", "server.port": 6379, "db.operation.name": "GET" }
    })
    expect(specs.of("get")).toBe(get)
    expect(specs.of("scan").attributes["db.operation.name"]).toBe("SCAN")
    expect(specs.make("set", "MSET")).toEqual({
      name: "redis.set",
      attributes: { "db.system.name": "redis", "server.port": 6379, "db.operation.name": "MSET" }
    })
  })

  it("the socket's silence timeout: the deadline plus a quarter, at least 50 ms more", () => {
    expect(Deadlines.socketTimeoutOf(Duration.millis(100))).toBe(150)
    expect(Deadlines.socketTimeoutOf(Duration.millis(199))).toBe(249)
    expect(Deadlines.socketTimeoutOf(Duration.millis(202))).toBe(253)
    expect(Deadlines.socketTimeoutOf(Duration.millis(2000))).toBe(2500)
  })

  it.effect("retune: an invalid timeout is a ConfigError and changes nothing; a valid one sets both", () =>
    Effect.scoped(Effect.gen(function*() {
      const deadlines = yield* Deadlines.make(Duration.millis(1000))
      const socket: Array<number> = []
      const error = yield* Effect.flip(Deadlines.retune(deadlines, Duration.zero, (ms) => socket.push(ms)))
      expect(String(error)).toMatch(/commandTimeout must be a positive, finite duration/)
      expect(Duration.toMillis(deadlines.timeout())).toBe(1000)
      expect(socket).toEqual([])
      yield* Deadlines.retune(deadlines, "400 millis", (ms) => socket.push(ms))
      expect(Duration.toMillis(deadlines.timeout())).toBe(400)
      expect(socket).toEqual([500])
    })))
})
