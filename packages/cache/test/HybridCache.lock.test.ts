/**
 * The distributed stampede control of the hybrid cache's getOrSet (a Redis lock per key, `internal/lock.ts`).
 *
 * - Under TestClock, over an in-memory lock store with expiry on the Clock: the holder (reads once more, produces,
 *   stores before releasing), waiters (bounded backoff, the holder's value), a dead holder (its lock expires, a waiter
 *   takes over), a failed factory (released, taken over at the next check), the lock unavailable (runs locally),
 *   `maxWait`, a factory slower than the TTL (extended; or, without extension, a second run whose lock the first
 *   holder's release leaves alone), the caller's hard timeout while waiting.
 * - Against the shared Redis (unique key prefixes): two cache layers contending (one factory run), a dead holder's
 *   lock expiring, the hard timeout, extension and its absence, the reserved namespace, and the lock service down /
 *   the breaker open (the factory runs locally, single-flight per process).
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisConnection } from "@steadfast/redis"
import { PermanentError } from "@steadfast/resilience"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Factory from "../src/internal/factory.js"
import * as Lock from "../src/internal/lock.js"
import * as HybridCache from "../src/HybridCache.js"
import { admin, cleanup, REDIS_URL, unique } from "./hybrid.utils.js"
import { memoryLocks } from "./locks.utils.js"
import { eventually } from "./utils.js"

/** One "instance": its view of the shared L2 values, its factory runs and its events. */
const instance = (values: Map<string, string>, name: string) => {
  const events: Array<string> = []
  const peeks: Array<number> = []
  let runs = 0
  const peek = (key: string) =>
    Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), (at) =>
      Effect.sync(() => {
        peeks.push(at)
        return Option.fromNullable(values.get(key))
      }))
  /** A factory that takes `ms` and stores `${name}${runs}`. */
  const produce = (key: string, ms: number, fail = false): Effect.Effect<string, string> =>
    Effect.suspend(() => {
      runs++
      const value = `${name}${runs}`
      return Effect.zipRight(
        Effect.sleep(`${ms} millis`),
        fail ? Effect.fail("factory failed") : Effect.sync(() => (values.set(key, value), value))
      )
    })
  const work = (key: string, ms: number, options: { fail?: boolean; refresh?: boolean } = {}): Lock.Work<string, never> => ({
    peek: peek(key),
    produce: produce(key, ms, options.fail),
    refresh: options.refresh ?? false,
    event: (e, detail) => events.push(detail === undefined ? e : `${e}:${detail}`)
  })
  return { events, peeks, work, runs: () => runs }
}

const lockOf = (options: Lock.LockOptions = {}) => Lock.resolve(options)!

describe("distributed lock (TestClock, in-memory store)", () => {
  it.effect("the holder reads once more, runs the factory, stores, then releases", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map<string, string>()
      const a = instance(values, "a")
      const fiber = yield* Effect.fork(Lock.run(m.store, "k", lockOf(), a.work("k", 100)))
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(fiber)).toBe("a1")
      expect(a.events).toEqual(["lock_acquired"])
      expect(a.peeks).toEqual([0]) // the read after acquiring
      expect(values.get("k")).toBe("a1")
      expect(m.locks.size).toBe(0)
      expect(m.log.at(-1)).toBe("release @100") // after the value was stored
    }))

  it.effect("a value stored between the caller's miss and the acquire is answered without running the factory", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map([["k", "theirs"]])
      const a = instance(values, "a")
      expect(yield* Lock.run(m.store, "k", lockOf(), a.work("k", 100))).toBe("theirs")
      expect(a.runs()).toBe(0)
      expect(a.events).toEqual(["lock_acquired", "lock_value_found"])
      expect(m.locks.size).toBe(0)
    }))

  it.effect("a waiter polls with a doubling pause up to maxPoll and answers the holder's value; it never runs the factory", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map<string, string>()
      const a = instance(values, "a")
      const b = instance(values, "b")
      const holder = yield* Effect.fork(Lock.run(m.store, "k", lockOf(), a.work("k", 1000)))
      const waiter = yield* Effect.fork(Lock.run(m.store, "k", lockOf(), b.work("k", 1000)))
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(holder)).toBe("a1")
      expect(yield* Fiber.join(waiter)).toBe("a1")
      expect(b.runs()).toBe(0)
      expect(b.events).toEqual(["lock_busy", "lock_value_found"])
      // 10, 20, 40, 80, 160, then 200 ms apart; the holder stored at 1000.
      expect(b.peeks).toEqual([10, 30, 70, 150, 310, 510, 710, 910, 1110])
    }))

  it.effect("a dead holder: its lock expires after its TTL and a waiter takes it over", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map<string, string>()
      const b = instance(values, "b")
      yield* m.plant("k", 500)
      const waiter = yield* Effect.fork(Lock.run(m.store, "k", lockOf(), b.work("k", 100)))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(waiter)).toBe("b1")
      expect(b.events).toEqual(["lock_busy", "lock_acquired"])
      // Checks at 10, 30, 70, 150, 310 (lock still held), 510 (expired at 500: taken, read once more, produced).
      expect(b.peeks).toEqual([10, 30, 70, 150, 310, 510, 510])
      expect(values.get("k")).toBe("b1")
      expect(m.locks.size).toBe(0)
    }))

  it.effect("the holder's factory fails: it releases, a waiter takes over at its next check", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map<string, string>()
      const a = instance(values, "a")
      const b = instance(values, "b")
      const holder = yield* Effect.fork(Effect.either(Lock.run(m.store, "k", lockOf(), a.work("k", 100, { fail: true }))))
      const waiter = yield* Effect.fork(Lock.run(m.store, "k", lockOf(), b.work("k", 100)))
      yield* TestClock.adjust("1 second")
      expect(Either.isLeft(yield* Fiber.join(holder))).toBe(true)
      expect(yield* Fiber.join(waiter)).toBe("b1")
      expect(b.peeks.slice(0, 5)).toEqual([10, 30, 70, 150, 150]) // released at 100, taken at 150
    }))

  it.effect("the lock unavailable (Redis down, breaker open): the factory runs here, also when it fails mid-wait", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map<string, string>()
      const a = instance(values, "a")
      m.setDown("circuit_open")
      expect(yield* Lock.run(m.store, "k", lockOf(), a.work("k", 0))).toBe("a1")
      expect(a.events).toEqual(["lock_unavailable:circuit_open"])
      m.setDown(undefined)
      values.clear()
      const b = instance(values, "b")
      yield* m.plant("j", 10_000)
      const waiter = yield* Effect.fork(Lock.run(m.store, "j", lockOf(), b.work("j", 0)))
      yield* TestClock.adjust("100 millis")
      m.setDown("timeout")
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(waiter)).toBe("b1")
      expect(b.events).toEqual(["lock_busy", "lock_unavailable:timeout"])
    }))

  it.effect("maxWait: a waiter that waited that long runs the factory itself", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map<string, string>()
      const b = instance(values, "b")
      yield* m.plant("k", 10_000)
      const waiter = yield* Effect.fork(Lock.run(m.store, "k", lockOf({ maxWait: "300 millis" }), b.work("k", 0)))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(waiter)).toBe("b1")
      expect(b.events).toEqual(["lock_busy", "lock_wait_timeout"])
      expect(b.peeks).toEqual([10, 30, 70, 150, 310])
    }))

  it.effect("a factory slower than the lock TTL keeps its lock by extending it: the waiter never runs it", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map<string, string>()
      const a = instance(values, "a")
      const b = instance(values, "b")
      const lock = lockOf({ ttl: "300 millis", maxWait: "5 seconds" })
      const holder = yield* Effect.fork(Lock.run(m.store, "k", lock, a.work("k", 1000)))
      const waiter = yield* Effect.fork(Lock.run(m.store, "k", lock, b.work("k", 1000)))
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(holder)).toBe("a1")
      expect(yield* Fiber.join(waiter)).toBe("a1")
      expect(a.runs() + b.runs()).toBe(1)
      // Extended every 100 ms while the factory ran (its 1000 ms).
      expect(a.events.filter((e) => e === "lock_extended").length).toBeGreaterThanOrEqual(9)
      expect(a.events).not.toContain("lock_lost")
      expect(m.locks.size).toBe(0)
    }))

  it.effect("without extension a factory slower than the TTL runs twice; the first holder's release leaves the second's lock", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map<string, string>()
      const a = instance(values, "a")
      const b = instance(values, "b")
      const holder = yield* Effect.fork(Lock.run(m.store, "k", lockOf({ ttl: "300 millis", extend: false }), a.work("k", 1000)))
      const waiter = yield* Effect.fork(Lock.run(m.store, "k", lockOf({ ttl: "5 seconds", extend: false }), b.work("k", 1000)))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(holder)).toBe("a1")
      expect(a.events).toEqual(["lock_acquired", "lock_lost"]) // its release found another token
      expect(m.locks.size).toBe(1) // b's lock (taken at 310 when a's expired) is still there
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(waiter)).toBe("b1")
      expect(b.events).toEqual(["lock_busy", "lock_acquired"])
      expect(a.runs() + b.runs()).toBe(2)
      expect(values.get("k")).toBe("b1") // the later write wins
      expect(m.locks.size).toBe(0)
    }))

  it.effect("a lock taken from its holder (it expired during an outage): lock_lost once, the factory completes", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map<string, string>()
      const a = instance(values, "a")
      const holder = yield* Effect.fork(Lock.run(m.store, "k", lockOf({ ttl: "300 millis" }), a.work("k", 1000)))
      yield* TestClock.adjust("150 millis")
      m.locks.set(Lock.lockKeyOf("k"), { token: "other", expiresAt: 100_000 })
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(holder)).toBe("a1")
      expect(a.events.filter((e) => e === "lock_lost")).toHaveLength(1)
      expect(m.locks.get(Lock.lockKeyOf("k"))?.token).toBe("other")
    }))

  it.effect("an eager refresh holds the lock without reading first; a busy lock answers the current value", () =>
    Effect.gen(function*() {
      const m = memoryLocks()
      const values = new Map([["k", "old"]])
      const a = instance(values, "a")
      const fiber = yield* Effect.fork(Lock.run(m.store, "k", lockOf(), a.work("k", 100, { refresh: true })))
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(fiber)).toBe("a1")
      expect(a.peeks).toEqual([])
      const b = instance(values, "b")
      yield* m.plant("k", 10_000)
      const busy = yield* Effect.fork(Lock.run(m.store, "k", lockOf(), b.work("k", 100, { refresh: true })))
      yield* TestClock.adjust("10 millis")
      expect(yield* Fiber.join(busy)).toBe("a1")
      expect(b.runs()).toBe(0)
    }))

  it("rejects bad lock options", () => {
    expect(Lock.resolve(undefined)).toBeUndefined()
    expect(Lock.resolve(false)).toBeUndefined()
    expect(Lock.resolve(true)).toEqual({ ttlMs: 10_000, extend: true, pollMs: 10, maxPollMs: 200, maxWaitMs: 30_000 })
    expect(() => Lock.resolve({ ttl: "0 millis" })).toThrow(/lock.ttl/)
    expect(() => Lock.resolve({ poll: "50 millis", maxPoll: "10 millis" })).toThrow(/maxPoll/)
    expect(() => Lock.resolve({ maxWait: Infinity })).toThrow(/lock.maxWait/)
    expect(() => Factory.resolve({ lock: { extend: "yes" as unknown as boolean } })).toThrow(/lock.extend/)
  })
})

// ---- Through the factory control (single-flight, timeouts) ----------------------------------------------------

describe("getOrSet with the lock (TestClock, scripted backend)", () => {
  const setup = Effect.gen(function*() {
    const m = memoryLocks()
    const l2 = new Map<string, string>()
    const events: Array<string> = []
    const stored: Array<readonly [string, string, boolean]> = []
    let acquires = 0
    const store: Lock.LockStore = { ...m.store, acquire: (k, t, ttl) => (acquires++, m.store.acquire(k, t, ttl)) }
    const backend: Factory.Backend = {
      hit: () => undefined,
      lookup: (key) => Effect.sync((): Factory.Lookup => l2.has(key) ? { _tag: "Value", value: l2.get(key)! } : { _tag: "Miss" }),
      store: (key, value, _options, refill) => Effect.sync(() => (l2.set(key, value), stored.push([key, value, refill]))),
      servedStale: () => {},
      event: (name, detail) => events.push(detail === undefined ? name : `${name}:${detail}`),
      locks: { store, peek: (key) => Effect.sync(() => Option.fromNullable(l2.get(key))) }
    }
    const control = Factory.make(backend, yield* Effect.scope)
    const getOrSet = <E>(key: string, compute: Effect.Effect<string, E>, options?: Factory.FactoryOptions) =>
      control.getOrSet(key, compute, options, Factory.resolve(options))
    return { m, l2, events, stored, getOrSet, acquires: () => acquires }
  })

  it.scoped("in-process single flight first: 20 callers, one lock acquire, one run", () =>
    Effect.gen(function*() {
      const t = yield* setup
      let runs = 0
      const compute = Effect.as(Effect.sleep("100 millis"), "v").pipe(Effect.tap(() => Effect.sync(() => runs++)))
      const fibers = yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.fork(t.getOrSet("k", compute, { lock: true })))
      yield* TestClock.adjust("100 millis")
      expect(new Set(yield* Effect.forEach(fibers, Fiber.join))).toEqual(new Set(["v"]))
      expect(runs).toBe(1)
      expect(t.acquires()).toBe(1)
      expect(t.m.locks.size).toBe(0)
      // Without the option: no lock command at all.
      yield* Effect.fork(t.getOrSet("j", compute))
      yield* TestClock.adjust("100 millis")
      expect(t.acquires()).toBe(1)
    }))

  it.scoped("waiting for another instance's lock past the hard timeout: FactoryTimeoutError; the wait goes on and stores", () =>
    Effect.gen(function*() {
      const t = yield* setup
      yield* t.m.plant("k", 1000)
      const caller = yield* Effect.fork(Effect.either(t.getOrSet("k", Effect.succeed("mine"), { lock: true, hardTimeout: "200 millis" })))
      yield* TestClock.adjust("200 millis")
      const result = yield* Fiber.join(caller)
      expect(Either.isLeft(result) && result.left).toBeInstanceOf(Factory.FactoryTimeoutError)
      yield* TestClock.adjust("1 second") // the dead holder's lock expires at 1000; the flight takes it and stores
      expect(t.stored).toEqual([["k", "mine", true]])
      expect(t.events).toEqual(expect.arrayContaining(["lock_busy", "hard_timeout", "lock_acquired", "completed"]))
    }))
})

// ---- Against the shared Redis -------------------------------------------------------------------------------

/** A hybrid cache layer (its own connection and subscriber: another "instance"); the scope closes it. */
const instanceOn = (
  options: HybridCache.Options,
  url = REDIS_URL
): Effect.Effect<HybridCache.HybridCache, never, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      HybridCache.layer(options).pipe(
        Layer.provideMerge(RedisConnection.layer({ url, commandTimeout: "500 millis", connectTimeout: "500 millis" }))
      )
    )
    return Context.get(context, HybridCache.HybridCache)
  }).pipe(Effect.orDie)

const factoryStats = (cache: HybridCache.HybridCache) => Effect.map(cache.stats, (s) => s.hybrid!.factory ?? {})

describe("HybridCache's lock against the shared Redis", () => {
  it.live("two instances contend: the factory runs once, both answer its value, the lock is gone after", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("contend")
      yield* cleanup(keyPrefix)
      const options: HybridCache.Options = { keyPrefix, factory: { lock: { ttl: "2 seconds" } } }
      const a = yield* instanceOn(options)
      const b = yield* instanceOn(options)
      const redis = yield* admin
      let runs = 0
      const compute = Effect.zipRight(Effect.sync(() => runs++), Effect.as(Effect.sleep("200 millis"), "computed"))
      const callers = [a, b, a, b].flatMap((cache) => Array.from({ length: 8 }, () => cache.getOrSetWith("k", compute)))
      const values = yield* Effect.all(callers, { concurrency: "unbounded" })
      expect(new Set(values)).toEqual(new Set(["computed"]))
      expect(runs).toBe(1)
      expect(yield* Effect.promise(() => redis.get(`${keyPrefix}k`))).toBe("computed")
      expect(yield* Effect.promise(() => redis.exists(`${keyPrefix}${Lock.lockKeyOf("k")}`))).toBe(0)
      const [fa, fb] = [yield* factoryStats(a), yield* factoryStats(b)]
      // One acquired it first; the other waited (and, had its check fallen between the holder's store and release,
      // acquired it too, then found the value on its read after acquiring).
      expect((fa["lock_acquired"] ?? 0) + (fb["lock_acquired"] ?? 0)).toBeGreaterThanOrEqual(1)
      expect((fa["lock_busy"] ?? 0) + (fb["lock_busy"] ?? 0)).toBe(1)
      expect((fa["lock_value_found"] ?? 0) + (fb["lock_value_found"] ?? 0)).toBe(1)
      yield* Effect.promise(() => redis.del(`${keyPrefix}k`))
    })))

  it.live("a dead holder's lock: the waiter takes over once it expired (its TTL), and runs the factory", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("dead")
      yield* cleanup(keyPrefix)
      const b = yield* instanceOn({ keyPrefix })
      const redis = yield* admin
      yield* Effect.promise(() => redis.set(`${keyPrefix}${Lock.lockKeyOf("k")}`, "dead-holder", "PX", 400))
      const started = Date.now()
      let runs = 0
      expect(yield* b.getOrSetWith("k", Effect.sync(() => `b${++runs}`), { lock: true })).toBe("b1")
      const waited = Date.now() - started
      expect(waited).toBeGreaterThanOrEqual(350)
      expect(waited).toBeLessThan(2000)
      expect(yield* factoryStats(b)).toMatchObject({ lock_busy: 1, lock_acquired: 1 })
      yield* Effect.promise(() => redis.del(`${keyPrefix}k`))
    })))

  it.live("the caller's hard timeout while another instance holds the lock: FactoryTimeoutError; the value lands later", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("hard")
      yield* cleanup(keyPrefix)
      const b = yield* instanceOn({ keyPrefix, factory: { lock: true } })
      const redis = yield* admin
      yield* Effect.promise(() => redis.set(`${keyPrefix}${Lock.lockKeyOf("k")}`, "slow-holder", "PX", 500))
      const failed = yield* Effect.flip(b.getOrSetWith("k", Effect.succeed("mine"), { hardTimeout: "100 millis" }))
      expect(failed).toBeInstanceOf(HybridCache.FactoryTimeoutError)
      // The flight kept waiting: once the holder's lock expired it took it, ran the factory and stored.
      expect(yield* eventually(Effect.map(b.get("k"), (v) => Option.getOrUndefined(v) === "mine"), 3000)).toBe(true)
      yield* Effect.promise(() => redis.del(`${keyPrefix}k`))
    })))

  it.live("a factory slower than the lock TTL: extended, the other instance waits and never runs it", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("extend")
      yield* cleanup(keyPrefix)
      const options: HybridCache.Options = { keyPrefix, factory: { lock: { ttl: "300 millis", maxWait: "5 seconds" } } }
      const a = yield* instanceOn(options)
      const b = yield* instanceOn(options)
      const redis = yield* admin
      let runs = 0
      const slow = (name: string) => Effect.zipRight(Effect.sync(() => runs++), Effect.as(Effect.sleep("1 second"), name))
      const first = yield* Effect.fork(a.getOrSetWith("k", slow("a")))
      yield* Effect.sleep("50 millis")
      expect(yield* b.getOrSetWith("k", slow("b"))).toBe("a")
      expect(yield* Fiber.join(first)).toBe("a")
      expect(runs).toBe(1)
      expect((yield* factoryStats(a))["lock_extended"]).toBeGreaterThanOrEqual(2)
      expect((yield* factoryStats(a))["lock_lost"]).toBeUndefined()
      yield* Effect.promise(() => redis.del(`${keyPrefix}k`))
    })))

  it.live("without extension: a second run; the first holder's release leaves the second's lock in place", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("noextend")
      yield* cleanup(keyPrefix)
      const a = yield* instanceOn({ keyPrefix, factory: { lock: { ttl: "300 millis", extend: false } } })
      const b = yield* instanceOn({ keyPrefix, factory: { lock: { ttl: "5 seconds", extend: false } } })
      const redis = yield* admin
      const lockKey = `${keyPrefix}${Lock.lockKeyOf("k")}`
      let runs = 0
      const slow = (name: string, ms: number) =>
        Effect.zipRight(Effect.sync(() => runs++), Effect.as(Effect.sleep(`${ms} millis`), name))
      const first = yield* Effect.fork(a.getOrSetWith("k", slow("a", 800)))
      yield* Effect.sleep("50 millis")
      const second = yield* Effect.fork(b.getOrSetWith("k", slow("b", 1200)))
      expect(yield* Fiber.join(first)).toBe("a")
      // a released after b took the expired lock: b's lock (its token) is still there.
      const held = yield* Effect.promise(() => redis.get(lockKey))
      expect(held).not.toBeNull()
      expect((yield* factoryStats(a))["lock_lost"]).toBe(1)
      expect(yield* Fiber.join(second)).toBe("b")
      expect(runs).toBe(2)
      expect(yield* Effect.promise(() => redis.get(`${keyPrefix}k`))).toBe("b") // the later write wins
      expect(yield* Effect.promise(() => redis.exists(lockKey))).toBe(0)
      yield* Effect.promise(() => redis.del(`${keyPrefix}k`))
    })))

  it.live("lock keys live under keyPrefix + __steadfast:lock: and are never read or written as values", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("reserved")
      yield* cleanup(keyPrefix)
      const a = yield* instanceOn({ keyPrefix, factory: { lock: { ttl: "5 seconds" } } })
      const redis = yield* admin
      const pttl = yield* Effect.fork(a.getOrSetWith("k", Effect.as(Effect.sleep("300 millis"), "v")))
      yield* Effect.sleep("100 millis")
      const ttl = yield* Effect.promise(() => redis.pttl(`${keyPrefix}__steadfast:lock:k`))
      expect(ttl).toBeGreaterThan(4000)
      yield* Fiber.join(pttl)
      for (const attempt of [a.get("__steadfast:lock:k"), a.set("__steadfast:lock:k", "x"), a.delete("__steadfast:x")]) {
        const error = yield* Effect.flip(attempt)
        expect(error).toBeInstanceOf(PermanentError)
        expect(error.reason).toBe("invalid_argument")
      }
      expect(Either.isLeft(yield* Effect.either(a.getOrSetWith("__steadfast:lock:j", Effect.succeed("x"))))).toBe(true)
      yield* Effect.promise(() => redis.del(`${keyPrefix}k`))
    })))

  it.live("lock service down, then the breaker open: the factory runs locally, single-flight per process", () =>
    Effect.scoped(Effect.gen(function*() {
      // Nothing listens on port 1: every lock command fails (connection refused), then the breaker opens.
      const down = yield* instanceOn({ keyPrefix: unique("down"), factory: { lock: true } }, "redis://127.0.0.1:1")
      let runs = 0
      const compute = Effect.zipRight(Effect.sync(() => runs++), Effect.as(Effect.sleep("50 millis"), "local"))
      const values = yield* Effect.all(Array.from({ length: 16 }, () => down.getOrSetWith("k", compute)), { concurrency: "unbounded" })
      expect(new Set(values)).toEqual(new Set(["local"]))
      expect(runs).toBe(1)
      const first = yield* factoryStats(down)
      expect(first["lock_unavailable"]).toBe(1)
      // Enough failed reads open the breaker; then the lock is not even tried.
      yield* eventually(Effect.zipRight(down.get("x"), Effect.map(down.stats, (s) => s.circuitState === "OPEN")), 10_000)
      expect(yield* down.getOrSetWith("j", compute)).toBe("local")
      expect((yield* factoryStats(down))["lock_unavailable:circuit_open"]).toBe(1)
    })))
})
