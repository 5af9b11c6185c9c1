/**
 * The hybrid cache's behaviour that no other test pinned down (found by mutation testing, `HybridCache.ts`): option
 * validation and its messages, the operation named by a refused key, reserved keys anywhere in a batch, the counts
 * `stats` reports (L1 hits and misses of `get`, `getMany` and `getOrSet`, factory events, the summed hits), L1 refills
 * after `setMany` and after `getOrSet`'s read, the fallback's options, a fallback answer never filling L1, fail-safe
 * candidates answered by Redis, freshness after an event-loop pause for `getMany` and `getOrSet`, a cache without a
 * key prefix, BCAST mode with its default prefix, the metrics' labels, `layerConfig`. On the shared Redis (unique key
 * prefixes) unless a spawned server is needed (a data path stalled by a ChaosProxy: the write fence's length, L1 when
 * the canary's lease ran out).
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisConnection } from "@steadfast/redis"
import { CircuitBreaker, PermanentError } from "@steadfast/resilience"
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import * as HybridCache from "../src/HybridCache.js"
import { admin, cleanup, hybrid, hybridStats, REDIS_URL, trusted, unique, warm } from "./hybrid.utils.js"
import { eventually } from "./utils.js"

/** The hybrid cache with its `getOrSetWith` (the `hybrid` helper gives the `Cache` only). */
const hybridWith = (options: HybridCache.Options) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      HybridCache.layer(options).pipe(
        Layer.provideMerge(RedisConnection.layer({ url: REDIS_URL, commandTimeout: "500 millis", connectTimeout: "500 millis" }))
      )
    )
    return Context.get(context, HybridCache.HybridCache)
  }).pipe(Effect.orDie)

/** Builds the layer with `options`: the defect it dies with (undefined when it builds). */
const buildDefect = (options: HybridCache.Options) =>
  Effect.map(
    Effect.exit(Effect.scoped(Layer.build(HybridCache.layer(options).pipe(Layer.provide(RedisConnection.layer({ url: REDIS_URL })))))),
    (exit) => Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
  )

const labelsOf = (tags: ReadonlyArray<MetricLabel.MetricLabel>) => Object.fromEntries(tags.map((t) => [t.key, t.value]))
/** The series of `name` whose labels are exactly `labels`, as a counter's count (0 when there is none yet). */
const countOf = (name: string, labels: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((p) =>
      p.metricKey.name === name && JSON.stringify(labelsOf(p.metricKey.tags)) === JSON.stringify(labels)
    )
    return pair === undefined ? 0 : Number((pair.metricState as unknown as { readonly count: number }).count)
  })

/** Keeps the event loop busy for `ms` (a GC pause, a long task), then runs `effect` in the same step. */
const afterPause = <A, E, R>(ms: number, effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const end = Date.now() + ms
    while (Date.now() < end) { /* a long synchronous task */ }
    return effect
  })

describe("HybridCache options (survivors)", () => {
  it.live("bad options are a defect (IllegalArgumentException) whose message names the option and the rule", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [HybridCache.Options, RegExp]> = [
        [{ l1: { maxEntries: 0 } }, /^HybridCache l1\.maxEntries must be an integer >= 1, got 0$/],
        [{ l1: { maxEntries: 1.5 } }, /^HybridCache l1\.maxEntries must be an integer >= 1, got 1\.5$/],
        [{ l1: { maxEntries: -3 } }, /l1\.maxEntries must be an integer >= 1, got -3/],
        [{ tracking: { mode: "other" as "bcast" } }, /^HybridCache tracking\.mode must be "default" or "bcast", got other$/],
        [{ tracking: { mode: "bcast", prefixes: [] } }, /^HybridCache tracking\.prefixes must not be empty$/],
        [{ l1: { ttl: "0 millis" } }, /^HybridCache l1\.ttl must be a positive, finite duration$/],
        [{ l1: { ttl: Infinity } }, /^HybridCache l1\.ttl must be a positive, finite duration$/],
        [{ tracking: { canary: { interval: "0 millis" } } }, /^HybridCache tracking\.canary\.interval must be a positive, finite duration$/],
        [{ tracking: { canary: { timeout: "0 millis" } } }, /^HybridCache tracking\.canary\.timeout must be a positive, finite duration$/],
        [{ failSafe: { grace: Infinity } }, /^HybridCache failSafe\.grace must be a finite duration >= 0$/],
        [{ failSafe: { throttle: "soon" as "1 second" } }, /^HybridCache failSafe\.throttle must be a finite duration >= 0$/],
        [{ factory: { eagerRefresh: 2 } }, /^HybridCache factory\.eagerRefresh must be in \(0, 1\), got 2$/]
      ]
      for (const [options, message] of cases) {
        const defect = yield* buildDefect(options)
        expect(defect, JSON.stringify(options)).toBeInstanceOf(Cause.IllegalArgumentException)
        expect((defect as Error).message).toMatch(message)
      }
    }))

  it.live("the smallest valid values build: one L1 entry, one byte, no grace; an empty prefix list outside BCAST mode", () =>
    Effect.gen(function*() {
      const smallest: ReadonlyArray<HybridCache.Options> = [
        { l1: { maxEntries: 1 } },
        { l1: { maxBytes: 1 } },
        { failSafe: { grace: "0 millis", throttle: "0 millis" } },
        { tracking: { mode: "default", prefixes: [] } }
      ]
      for (const options of smallest) {
        expect(yield* buildDefect(options), JSON.stringify(options)).toBeUndefined()
      }
    }))

  it.live("a getOrSetWith option that is not valid is a defect naming getOrSet and the option", () =>
    Effect.scoped(Effect.gen(function*() {
      const cache = yield* hybridWith({ keyPrefix: unique("call-options") })
      const exit = yield* Effect.exit(cache.getOrSetWith("k", Effect.succeed("v"), { softTimeout: "0 millis" }))
      const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      expect(defect).toBeInstanceOf(Cause.IllegalArgumentException)
      expect((defect as Error).message).toBe("getOrSet softTimeout must be a positive, finite duration")
    })))

  it.effect("a program without the hybrid cache's layer dies naming the missing service", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(HybridCache.HybridCache as unknown as Effect.Effect<HybridCache.HybridCache>)
      expect(Exit.isFailure(exit) && String(Cause.squash(exit.cause))).toContain("@steadfast/cache/HybridCache")
    }))

  it.live("layerConfig builds the connection from configuration and the hybrid cache over it", () => {
    const keyPrefix = unique("layerConfig")
    return Effect.gen(function*() {
      yield* cleanup(keyPrefix)
      const cache = yield* HybridCache.HybridCache
      yield* cache.set("k", "v")
      expect(yield* cache.getOrSetWith("k", Effect.succeed("other"))).toBe("v")
      const stats = yield* cache.stats
      expect(stats.backend).toBe("hybrid")
      expect(stats.config).toMatchObject({ keyPrefix, url: `${REDIS_URL}/0` })
    }).pipe(
      Effect.provide(HybridCache.layerConfig({ keyPrefix }).pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["REDIS_URL", REDIS_URL]]))))
      )),
      Effect.scoped
    )
  })
})

describe("HybridCache refused keys (survivors)", () => {
  it.live("a reserved key is refused by every operation, anywhere in a batch, naming the operation; getOrSet runs nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("reserved")
      yield* cleanup(keyPrefix)
      const cache = yield* hybridWith({ keyPrefix })
      let runs = 0
      const attempts: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> = [
        ["get", cache.get("__steadfast:x")],
        ["getMany", cache.getMany(["a", "__steadfast:x"])],
        ["set", cache.set("__steadfast:x", "v")],
        ["setMany", cache.setMany([["a", "1"], ["__steadfast:x", "2"]])],
        ["delete", cache.delete("__steadfast:x")],
        ["getOrSet", cache.getOrSetWith("__steadfast:x", Effect.sync(() => `v${++runs}`))]
      ]
      for (const [operation, attempt] of attempts) {
        const error = yield* Effect.flip(attempt)
        expect(error, operation).toBeInstanceOf(PermanentError)
        expect((error as PermanentError).reason).toBe("invalid_argument")
        expect((error as PermanentError).operation).toBe(operation)
        expect((error as PermanentError).message).toBe(
          `${operation}: keys starting with "__steadfast:" are reserved for the hybrid cache's own keys (locks, canary)`
        )
      }
      expect(runs).toBe(0)
      // The batch was refused as a whole: "a" was not written.
      expect(yield* cache.get("a")).toEqual(Option.none())
    })))

  it.live("a key that is not valid is refused naming the operation", () =>
    Effect.scoped(Effect.gen(function*() {
      const cache = yield* hybridWith({ keyPrefix: unique("invalid") })
      const attempts: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> = [
        ["get", cache.get("")],
        ["getMany", cache.getMany(["a", ""])],
        ["setMany", cache.setMany([["", "1"]])],
        ["getOrSet", cache.getOrSetWith("", Effect.succeed("v"))]
      ]
      for (const [operation, attempt] of attempts) {
        const error = yield* Effect.flip(attempt)
        expect((error as PermanentError).reason, operation).toBe("invalid_argument")
        expect((error as PermanentError).operation).toBe(operation)
        expect((error as PermanentError).message).toBe(`${operation}: the key must not be empty`)
      }
      // Not a string (an array): refused by delete as by the others, not a defect of the write fence.
      const error = yield* Effect.flip(cache.delete(["a"] as unknown as string))
      expect(error).toBeInstanceOf(PermanentError)
      expect(error.reason).toBe("invalid_argument")
      expect(error.message).toBe("delete: the key must be a string, got object")
    })))
})

describe("HybridCache stats (survivors)", () => {
  it.live("hits are Redis' plus L1's; getMany and getOrSet count L1 hits and misses; L1 refills after setMany and getOrSet", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("stats")
      yield* cleanup(keyPrefix)
      const cache = yield* hybridWith({ keyPrefix })
      const redis = yield* admin
      expect(yield* trusted(cache)).toBe(true)
      yield* cache.set("k", "v")
      yield* cache.get("k") // Redis' hit, fills L1
      yield* cache.get("k") // L1's
      const first = yield* cache.stats
      expect(first.hits).toBe(2)
      expect(first.hybrid!.l1.hits).toBe(1)
      expect(first.hybrid!.l1.misses).toBe(1)
      expect("maxBytes" in first.hybrid!.l1).toBe(false)
      expect("l1MaxBytes" in first.config).toBe(false)

      // getMany: one key from L1, one from Redis.
      expect(yield* cache.getMany(["k", "absent"])).toEqual([Option.some("v"), Option.none()])
      const second = yield* hybridStats(cache)
      expect(second.l1.hits - first.hybrid!.l1.hits).toBe(1)
      expect(second.l1.misses - first.hybrid!.l1.misses).toBe(1)

      // setMany: once Redis answered, the next read fills L1 and the one after is a hit.
      yield* cache.setMany([["m", "1"], ["n", "2"]])
      yield* cache.getMany(["m", "n"])
      const afterFill = (yield* hybridStats(cache)).l1.hits
      expect(yield* cache.getMany(["m", "n"])).toEqual([Option.some("1"), Option.some("2")])
      expect((yield* hybridStats(cache)).l1.hits).toBe(afterFill + 2)

      // getOrSet on an L1 hit: counted as one; on a miss: counted as one, and what it read from Redis fills L1.
      let runs = 0
      const compute = Effect.sync(() => `computed${++runs}`)
      const beforeHit = yield* hybridStats(cache)
      expect(yield* cache.getOrSetWith("k", compute)).toBe("v")
      const afterHit = yield* hybridStats(cache)
      expect(afterHit.l1.hits - beforeHit.l1.hits).toBe(1)
      yield* Effect.promise(() => redis.set(`${keyPrefix}r`, "from-redis"))
      expect(yield* cache.getOrSetWith("r", compute)).toBe("from-redis")
      const afterMiss = yield* hybridStats(cache)
      expect(afterMiss.l1.misses - afterHit.l1.misses).toBe(1)
      expect(yield* cache.get("r")).toEqual(Option.some("from-redis"))
      expect((yield* hybridStats(cache)).l1.hits).toBe(afterMiss.l1.hits + 1)
      expect(runs).toBe(0)
      // The factory's events: exactly what happened (no event "with an undefined detail").
      expect(yield* cache.getOrSetWith("new", compute)).toBe("computed1")
      expect((yield* hybridStats(cache)).factory).toEqual({ completed: 1, inFlight: 0 })
    })))

  it.live("events with a detail are counted per detail; the metrics carry the event", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("events")
      yield* cleanup(keyPrefix)
      const breaker = yield* CircuitBreaker.make()
      const cache = yield* hybridWith({ keyPrefix, circuitBreaker: breaker, factory: { lock: true } })
      const before = {
        unavailable: yield* countOf("cache_factory_event_total", { event: "lock_unavailable" }),
        completed: yield* countOf("cache_factory_event_total", { event: "completed" })
      }
      yield* breaker.isolate
      expect(yield* cache.getOrSetWith("a", Effect.succeed("1"))).toBe("1")
      expect(yield* cache.getOrSetWith("b", Effect.succeed("2"))).toBe("2")
      const factory = (yield* hybridStats(cache)).factory!
      expect(factory["lock_unavailable"]).toBe(2)
      expect(factory["lock_unavailable:circuit_open"]).toBe(2)
      expect((yield* countOf("cache_factory_event_total", { event: "lock_unavailable" })) - before.unavailable).toBe(2)
      expect((yield* countOf("cache_factory_event_total", { event: "completed" })) - before.completed).toBe(2)
      yield* breaker.reset
    })))
})

describe("HybridCache L1 after heavy write traffic (survivors)", () => {
  it.live("writes of more keys than the tombstone bound while no read was in flight do not make L1 refuse a later read's fill", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("tombstones")
      yield* cleanup(keyPrefix)
      const cache = yield* hybridWith({ keyPrefix })
      expect(yield* trusted(cache)).toBe(true)
      yield* cache.set("k", "v")
      yield* cache.get("r") // a read, finished
      // 4,096 keys written (L1 keeps at most 4,096 per-key tombstones, and only while reads are in flight).
      yield* cache.setMany(Array.from({ length: 4096 }, (_, i) => [`w${i}`, "x"] as const))
      // A read of k, and while it is in flight a write of one more key: the read's fill is kept.
      const before = yield* hybridStats(cache)
      yield* Effect.all([cache.get("k"), cache.set("another", "y")], { concurrency: "unbounded" })
      const after = yield* hybridStats(cache)
      expect(after.l1.refusedFills).toBe(before.l1.refusedFills)
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      expect((yield* hybridStats(cache)).l1.hits).toBe(after.l1.hits + 1)
    })))
})

describe("HybridCache and its fallback (survivors)", () => {
  it.live("the fallback takes memory.maxEntries: with the breaker open, one entry is kept", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("fallback-bound")
      yield* cleanup(keyPrefix)
      const breaker = yield* CircuitBreaker.make()
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix, circuitBreaker: breaker, memory: { maxEntries: 1 } })
      yield* breaker.isolate
      yield* cache.set("a", "1")
      yield* cache.set("b", "2")
      expect(yield* cache.get("b")).toEqual(Option.some("2"))
      expect(yield* cache.get("a")).toEqual(Option.none())
    })))

  it.live("a value the fallback answered (breaker open) does not fill L1: once Redis is back, Redis' value is read", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("fallback-fill")
      yield* cleanup(keyPrefix)
      const breaker = yield* CircuitBreaker.make()
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix, circuitBreaker: breaker })
      const redis = yield* admin
      expect(yield* trusted(cache)).toBe(true)
      yield* cache.set("k", "v1") // Redis and the fallback's mirror
      expect(yield* warm(cache, "k")).toBe(true)
      const invalidations = (yield* hybridStats(cache)).l1.invalidations
      yield* Effect.promise(() => redis.set(`${keyPrefix}k`, "v2")) // Redis only: L1 drops the key
      expect(yield* eventually(Effect.map(hybridStats(cache), (h) => h.l1.invalidations > invalidations), 2000)).toBe(true)
      yield* breaker.isolate
      expect(yield* cache.get("k")).toEqual(Option.some("v1")) // the fallback's copy
      yield* breaker.reset
      expect(yield* cache.get("k")).toEqual(Option.some("v2"))
    })))
})

describe("HybridCache fail-safe candidates (survivors, shared Redis)", () => {
  it.live("an entry past its L1 TTL (within grace) that Redis answers: refreshed as a hit, read twice in a batch, never served stale", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("candidates")
      yield* cleanup(keyPrefix)
      const breaker = yield* CircuitBreaker.make()
      const cache = yield* hybridWith({
        keyPrefix,
        circuitBreaker: breaker,
        l1: { ttl: "100 millis" },
        failSafe: { grace: "30 seconds" }
      })
      expect(yield* trusted(cache)).toBe(true)
      const keys = ["a", "b", "c", "d", "e"]
      yield* cache.setMany(keys.map((k) => [k, k] as const))
      for (const k of keys) expect(yield* warm(cache, k)).toBe(true)
      yield* Effect.sleep("150 millis") // past the L1 TTL
      let runs = 0
      const compute = Effect.sync(() => `computed${++runs}`)

      // Redis answers a: L1 is refreshed, the next read a hit.
      expect(yield* cache.get("a")).toEqual(Option.some("a"))
      const hits = (yield* hybridStats(cache)).l1.hits
      expect(yield* cache.get("a")).toEqual(Option.some("a"))
      expect((yield* hybridStats(cache)).l1.hits).toBe(hits + 1)
      // The same candidate twice in one batch.
      expect(yield* cache.getMany(["b", "b"])).toEqual([Option.some("b"), Option.some("b")])
      // getMany of a candidate Redis answers, and getOrSet of one: from Redis, nothing stale, no factory run.
      expect(yield* cache.getMany(["c"])).toEqual([Option.some("c")])
      expect(yield* cache.getOrSetWith("d", compute)).toBe("d")
      expect(runs).toBe(0)
      expect((yield* hybridStats(cache)).failSafe!.staleServed).toBe(0)
      // Breaker open: the fallback answers e with its copy (the mirror): that answer, not a stale one.
      yield* breaker.isolate
      expect(yield* cache.get("e")).toEqual(Option.some("e"))
      expect((yield* hybridStats(cache)).failSafe!.staleServed).toBe(0)
      yield* breaker.reset
    })))

  it.live("a throttled key is answered stale by getMany without trying Redis; the metric carries the reason", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("throttled")
      yield* cleanup(keyPrefix)
      const breaker = yield* CircuitBreaker.make()
      const cache = yield* hybridWith({
        keyPrefix,
        circuitBreaker: breaker,
        mirror: false, // the fallback holds no copy: what is served comes from L1's fail-safe
        l1: { ttl: "100 millis" },
        failSafe: { grace: "30 seconds", throttle: "30 seconds" }
      })
      expect(yield* trusted(cache)).toBe(true)
      const before = {
        failed: yield* countOf("cache_stale_served_total", { reason: "l2_failed" }),
        throttled: yield* countOf("cache_stale_served_total", { reason: "throttled" })
      }
      yield* cache.set("k", "v")
      expect(yield* warm(cache, "k")).toBe(true)
      yield* Effect.sleep("150 millis") // past the L1 TTL
      yield* breaker.isolate
      expect(yield* cache.get("k")).toEqual(Option.some("v")) // stale: the fallback had nothing
      const fallbacks = (yield* cache.stats).fallbacks
      expect(yield* cache.getMany(["k"])).toEqual([Option.some("v")])
      expect((yield* cache.stats).fallbacks).toBe(fallbacks) // Redis (and the fallback) not tried
      const failSafe = (yield* hybridStats(cache)).failSafe!
      expect(failSafe.byReason).toEqual({ l2_failed: 1, throttled: 1 })
      expect((yield* countOf("cache_stale_served_total", { reason: "l2_failed" })) - before.failed).toBe(1)
      expect((yield* countOf("cache_stale_served_total", { reason: "throttled" })) - before.throttled).toBe(1)
      yield* breaker.reset
    })))
})

describe("HybridCache freshness and invalidation (survivors)", () => {
  it.live("after an event-loop pause, getMany and getOrSet apply the invalidation waiting in the socket before L1 answers", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("pause")
      yield* cleanup(keyPrefix)
      const cache = yield* hybridWith({ keyPrefix })
      const redis = yield* admin
      expect(yield* trusted(cache)).toBe(true)
      yield* cache.setMany([["m", "m1"], ["g", "g1"]])
      expect(yield* warm(cache, "m")).toBe(true)
      expect(yield* warm(cache, "g")).toBe(true)
      yield* Effect.promise(() => redis.set(`${keyPrefix}m`, "m2"))
      expect(yield* afterPause(20, cache.getMany(["m"]))).toEqual([Option.some("m2")])
      yield* Effect.promise(() => redis.set(`${keyPrefix}g`, "g2"))
      expect(yield* afterPause(20, cache.getOrSetWith("g", Effect.succeed("computed")))).toBe("g2")
    })))

  it.live("without a key prefix: a foreign write reaches L1, and the lock key is __steadfast:lock:<key> at the top level", () =>
    Effect.scoped(Effect.gen(function*() {
      const base = unique("no-prefix")
      yield* cleanup(base, `__steadfast:lock:${base}`)
      const cache = yield* hybridWith({})
      const redis = yield* admin
      expect(yield* trusted(cache)).toBe(true)
      const key = `${base}k`
      yield* cache.set(key, "v1")
      expect(yield* warm(cache, key)).toBe(true)
      yield* Effect.promise(() => redis.set(key, "v2"))
      expect(yield* eventually(Effect.map(cache.get(key), (v) => Option.getOrUndefined(v) === "v2"), 2000)).toBe(true)

      const slow = yield* Effect.fork(cache.getOrSetWith(`${base}locked`, Effect.as(Effect.sleep("300 millis"), "x"), { lock: true }))
      yield* Effect.sleep("100 millis")
      expect(yield* Effect.promise(() => redis.pttl(`__steadfast:lock:${base}locked`))).toBeGreaterThan(0)
      expect(yield* Fiber.join(slow)).toBe("x")
    })))

  it.live("BCAST mode without prefixes: every key of the cache is pushed, a warm key is invalidated by a foreign write", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("bcast-default")
      yield* cleanup(keyPrefix)
      const cache = yield* hybridWith({ keyPrefix, tracking: { mode: "bcast" } })
      const redis = yield* admin
      expect(yield* trusted(cache)).toBe(true)
      yield* cache.set("k", "v1")
      expect(yield* warm(cache, "k")).toBe(true)
      yield* Effect.promise(() => redis.set(`${keyPrefix}k`, "v2"))
      expect(yield* eventually(Effect.map(cache.get("k"), (v) => Option.getOrUndefined(v) === "v2"), 2000)).toBe(true)
    })))

  it.live("a lock waiter that finds the value another instance stored fills L1 with it", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("peek")
      yield* cleanup(keyPrefix)
      const cache = yield* hybridWith({ keyPrefix })
      const redis = yield* admin
      expect(yield* trusted(cache)).toBe(true)
      // Another instance holds the lock, then stores the value (and would release).
      yield* Effect.promise(() => redis.set(`${keyPrefix}__steadfast:lock:k`, "other-holder", "PX", 5000))
      // The waiter's first check after 300 ms: the invalidation of the value's write (the key was read on the miss)
      // has long arrived by then, so nothing can drop what that check reads.
      const waiter = yield* Effect.fork(cache.getOrSetWith("k", Effect.succeed("mine"), { lock: { poll: "300 millis" } }))
      yield* Effect.sleep("50 millis")
      yield* Effect.promise(() => redis.set(`${keyPrefix}k`, "theirs"))
      expect(yield* Fiber.join(waiter)).toBe("theirs")
      const hits = (yield* hybridStats(cache)).l1.hits
      expect(yield* cache.get("k")).toEqual(Option.some("theirs"))
      expect((yield* hybridStats(cache)).l1.hits).toBe(hits + 1)
    })))
})

/** Sleeps until `at` (a `Date.now()` instant). */
const until = (at: number) => Effect.suspend(() => Effect.sleep(Math.max(0, at - Date.now())))

describe("HybridCache with the data path stalled (spawned redis-server behind a ChaosProxy; survivors)", () => {
  it.live("an interrupted write fences its key for twice the command deadline + 1 s, the deadline as tuned at runtime", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      // commandTimeout 500 ms (hybrid.utils).
      const { cache, connection } = yield* hybrid(proxy.url(), {
        keyPrefix: "h:",
        tracking: { subscriberAddress: { host: server.host, port: server.port } }
      })
      expect(yield* trusted(cache)).toBe(true)
      yield* server.command("SET", "h:a", "old")
      yield* server.command("SET", "h:b", "old")
      expect(yield* warm(cache, "a")).toBe(true)
      expect(yield* warm(cache, "b")).toBe(true)
      /** Two reads: whether the second was an L1 hit (the first filled L1). */
      const filled = (key: string) =>
        Effect.gen(function*() {
          yield* cache.get(key)
          const hits = (yield* hybridStats(cache)).l1.hits
          expect(yield* cache.get(key)).toEqual(Option.some("new"))
          return (yield* hybridStats(cache)).l1.hits > hits
        })
      /** A set held by the proxy, its caller interrupted after 50 ms, then let through: when it started. */
      const interruptedSet = (key: string) =>
        Effect.gen(function*() {
          yield* proxy.setFault(ChaosProxy.Stall())
          const startedAt = Date.now()
          const writer = yield* Effect.fork(cache.set(key, "new"))
          yield* Effect.sleep("50 millis")
          yield* Fiber.interrupt(writer)
          yield* proxy.setFault(ChaosProxy.PassThrough())
          return startedAt
        })

      // The 500 ms deadline: fenced for 2 s.
      const a = yield* interruptedSet("a")
      yield* until(a + 1400)
      expect(yield* filled("a")).toBe(false)

      // Tuned to 200 ms: fenced for 1.4 s from the write's start.
      yield* connection.setCommandTimeout("200 millis")
      const b = yield* interruptedSet("b")
      expect(yield* filled("b")).toBe(false)
      yield* until(b + 1150)
      expect(yield* filled("b")).toBe(false)
      yield* until(b + 1650)
      expect(yield* filled("b")).toBe(true)
    })))

  it.live("once the canary's lease ran out (Redis unreachable), get and getOrSet do not answer from L1", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      const built = yield* hybrid(proxy.url(), {
        keyPrefix: "h:",
        tracking: {
          canary: { interval: "200 millis", timeout: "100 millis" },
          subscriberAddress: { host: server.host, port: server.port }
        }
      })
      const { connection } = built
      const cache = built.cache as HybridCache.HybridCache // the layer provides the same object as both services
      expect(yield* trusted(cache)).toBe(true)
      yield* server.command("SET", "h:k", "v")
      expect(yield* warm(cache, "k")).toBe(true)
      // A 1 s deadline: the stalled sockets stay open (their silence timeout is 1.25 s) while the lease (300 ms from
      // the last canary round that reached Redis) runs out. Nothing demotes L1: only the lease says it may not answer.
      yield* connection.setCommandTimeout("1 second")
      yield* proxy.setFault(ChaosProxy.Stall())
      yield* Effect.sleep("600 millis")
      const before = yield* hybridStats(cache)
      expect(before.trusted).toBe(false)
      const [got, computed] = yield* Effect.all([
        cache.get("k"),
        cache.getOrSetWith("k", Effect.succeed("computed"))
      ], { concurrency: "unbounded" })
      // The fallback's copy (the mirror of the warm-up reads), after the deadline: not L1's answer.
      expect(got).toEqual(Option.some("v"))
      expect(computed).toBe("v")
      expect((yield* hybridStats(cache)).l1.hits).toBe(before.l1.hits)
      yield* proxy.setFault(ChaosProxy.PassThrough())
    })))
})

describe("HybridCache fail-safe throttle to the millisecond (TestClock, the shared Redis)", () => {
  it.scoped("a key answered stale is throttled until then + throttle, that instant excluded: get, getMany and getOrSet try again", () =>
    Effect.gen(function*() {
      const keyPrefix = unique("throttle-edge")
      yield* cleanup(keyPrefix)
      const breaker = yield* CircuitBreaker.make()
      // The cache's clock is the TestClock; the canary's lease (from the instant tracking is established, 0) lasts an
      // hour, so no canary round runs. The helpers below poll on the live clock.
      const cache = yield* hybridWith({
        keyPrefix,
        circuitBreaker: breaker,
        mirror: false,
        l1: { ttl: "100 millis" },
        failSafe: { grace: "1 minute", throttle: "100 millis" },
        tracking: { canary: { interval: "1 hour" } }
      })
      expect(yield* TestServices.provideLive(trusted(cache))).toBe(true)
      const keys = ["g", "m", "o"]
      for (const k of keys) {
        yield* cache.set(k, k)
        expect(yield* TestServices.provideLive(warm(cache, k))).toBe(true)
      }
      yield* TestClock.adjust("150 millis") // past the L1 TTL
      yield* breaker.isolate
      for (const k of keys) expect(yield* cache.get(k)).toEqual(Option.some(k)) // stale at 150: throttled until 250
      const failSafe = () => Effect.map(hybridStats(cache), (h) => h.failSafe!.byReason)
      const fallbacks = () => Effect.map(cache.stats, (s) => s.fallbacks)
      expect(yield* failSafe()).toEqual({ l2_failed: 3 })

      yield* TestClock.adjust("99 millis") // 249: throttled, Redis (here its fallback) not tried
      const at249 = yield* fallbacks()
      expect(yield* cache.get("g")).toEqual(Option.some("g"))
      expect(yield* cache.getMany(["m"])).toEqual([Option.some("m")])
      expect(yield* fallbacks()).toBe(at249)
      expect(yield* failSafe()).toEqual({ l2_failed: 3, throttled: 2 })

      yield* TestClock.adjust("1 millis") // 250: tried again (the fallback answers nothing: stale again)
      expect(yield* cache.get("g")).toEqual(Option.some("g"))
      expect(yield* cache.getMany(["m"])).toEqual([Option.some("m")])
      expect((yield* fallbacks()) - at249).toBe(2)
      // getOrSet: the read tried (a fallback), then the factory's value stored (the breaker is open: another).
      expect(yield* cache.getOrSetWith("o", Effect.succeed("computed"))).toBe("computed")
      expect((yield* fallbacks()) - at249).toBe(4)
      expect(yield* failSafe()).toEqual({ l2_failed: 5, throttled: 2 })
      yield* breaker.reset
    }))
})

describe("HybridCache's canary on a healthy Redis (the shared one)", () => {
  it.live("every interval a canary round runs and its invalidation arrives: rounds count up, none fails, L1 keeps answering", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("canary-rounds")
      yield* cleanup(keyPrefix)
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix, tracking: { canary: { interval: "100 millis", timeout: "400 millis" } } })
      expect(yield* trusted(cache)).toBe(true)
      const redis = yield* admin
      yield* Effect.promise(() => redis.set(`${keyPrefix}k`, "v"))
      expect(yield* warm(cache, "k")).toBe(true)
      const before = yield* hybridStats(cache)
      yield* Effect.sleep("1200 millis")
      const after = yield* hybridStats(cache)
      // About twelve rounds in 1.2 s (at least five, on a loaded machine), each renewing the lease.
      expect(after.canaryRounds - before.canaryRounds).toBeGreaterThanOrEqual(5)
      expect(after.canaryFailures).toBe(0)
      expect(after.trusted).toBe(true)
      const hits = after.l1.hits
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      expect((yield* hybridStats(cache)).l1.hits).toBe(hits + 1)
    })))
})
