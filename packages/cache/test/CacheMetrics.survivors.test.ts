/**
 * What a metrics scrape shows of the cache's metrics: each one's name, help text and kind (an `incremental` Effect
 * counter is exported as a Prometheus `counter`, any other counter as a `gauge`), and the latency histogram's buckets.
 * Dashboards and alerts are written against these, so a renamed metric or a counter turned gauge is a breaking change.
 * Also the labels the cache's own counters carry (`operation`, `backend`, `reason`) and which failures count as
 * get errors and as timeouts, seen through a `RedisCache` over a scripted connection.
 */
import { describe, expect, it } from "@effect/vitest"
import { ScriptedConnection } from "@steadfast/redis"
import { Retry } from "@steadfast/resilience"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as CacheMetrics from "../src/CacheMetrics.js"
import * as RedisCache from "../src/RedisCache.js"
import * as ResilientCache from "../src/ResilientCache.js"
import { Cache } from "../src/Cache.js"
import * as TestClock from "effect/TestClock"

type Kind = "counter" | "gauge" | "histogram"

const expected: ReadonlyArray<readonly [Metric.Metric<any, any, any>, string, string, Kind]> = [
  [CacheMetrics.getErrors, "cache_get_error_total", "Redis reads that failed", "counter"],
  [CacheMetrics.timeouts, "cache_timeout_total", "Redis calls that timed out", "counter"],
  [CacheMetrics.circuitOpens, "circuit_open_total", "Circuit breaker openings", "counter"],
  [
    CacheMetrics.hits,
    "cache_hit_total",
    "Keys found (a value a TypedCache then fails to decode is counted here and in cache_miss_total)",
    "counter"
  ],
  [
    CacheMetrics.misses,
    "cache_miss_total",
    "Lookups answered with nothing: keys not found, and values a TypedCache failed to decode",
    "counter"
  ],
  [CacheMetrics.fallbacks, "cache_fallback_total", "Operations served by the memory fallback", "counter"],
  [CacheMetrics.errors, "cache_error_total", "Redis failures by operation and reason", "counter"],
  [CacheMetrics.decodeErrors, "cache_decode_error_total", "Values that failed to decode", "counter"],
  [
    CacheMetrics.reconcileOverflows,
    "cache_reconcile_overflow_total",
    "Pending-key overflows, each answered by a namespace flush",
    "counter"
  ],
  [
    CacheMetrics.reconciled,
    "cache_reconciled_total",
    "Keys repaired in Redis after writes or deletes it did not acknowledge",
    "counter"
  ],
  [
    CacheMetrics.pendingReads,
    "cache_pending_read_total",
    "Reads answered locally because their key awaits reconciliation",
    "counter"
  ],
  [CacheMetrics.pendingKeys, "cache_pending_keys", "Keys awaiting reconciliation with Redis", "gauge"],
  [CacheMetrics.latency, "cache_operation_duration_seconds", "Cache operation latency", "histogram"],
  [CacheMetrics.staleServed, "cache_stale_served_total", "Stale values served by the hybrid cache's fail-safe", "counter"],
  [
    CacheMetrics.factoryEvents,
    "cache_factory_event_total",
    "getOrSet factory timeouts, background completions and eager refreshes",
    "counter"
  ]
]

const kindOf = (keyType: unknown): Kind | string =>
  MetricKeyType.isCounterKey(keyType)
    ? (keyType.incremental ? "counter" : "gauge (non-incremental counter)")
    : MetricKeyType.isGaugeKey(keyType)
    ? "gauge"
    : MetricKeyType.isHistogramKey(keyType)
    ? "histogram"
    : "other"

const labelsOf = (tags: ReadonlyArray<MetricLabel.MetricLabel>) => Object.fromEntries(tags.map((t) => [t.key, t.value]))

/** The series of `name` whose labels are exactly `labels`, as a counter's count (0 when there is none yet). */
const countOf = (name: string, labels: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((p) =>
      p.metricKey.name === name && JSON.stringify(labelsOf(p.metricKey.tags)) === JSON.stringify(labels)
    )
    return pair === undefined ? 0 : Number((pair.metricState as unknown as { readonly count: number }).count)
  })

describe("CacheMetrics as a scrape shows them", () => {
  it.effect("every metric's name, help text and kind", () =>
    Effect.gen(function*() {
      // Effect registers a metric the first time it is read or updated.
      for (const [metric] of expected) yield* Metric.value(metric)
      const pairs = yield* Metric.snapshot
      for (const [metric, name, description, kind] of expected) {
        const pair = pairs.find((p) => p.metricKey.name === name && p.metricKey.tags.length === 0)
        expect(pair, name).toBeDefined()
        expect(Option.getOrUndefined(pair!.metricKey.description), name).toBe(description)
        expect(kindOf(pair!.metricKey.keyType), name).toBe(kind)
        expect(pair!.metricKey.keyType, name).toEqual(metric.keyType)
      }
    }))

  it.effect("the latency histogram's buckets: 50 µs doubling up to 3.2768 s, then +Inf", () =>
    Effect.gen(function*() {
      const keyType = CacheMetrics.latency.keyType
      expect(MetricKeyType.isHistogramKey(keyType)).toBe(true)
      const bounds = (keyType as MetricKeyType.MetricKeyType.Histogram).boundaries.values
      const finite = bounds.filter(Number.isFinite)
      expect(finite).toHaveLength(17)
      expect(bounds[bounds.length - 1]).toBe(Infinity)
      expect(finite[16]).toBeCloseTo(3.2768, 9)
      finite.forEach((b, i) => expect(b).toBeCloseTo(0.00005 * 2 ** i, 12))
    }))
})

const scripted = RedisCache.layer({ retry: { get: Retry.none, getMany: Retry.none, set: Retry.none }, breaker: { failureThreshold: 100 } })
  .pipe(Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis" })))

describe("the cache's counters and their labels", () => {
  it.effect("a failed read counts as an error and a get error, labelled by operation, backend and reason", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      const labels = { operation: "get", backend: "redis", reason: "wrong_type" }
      const errors = yield* countOf("cache_error_total", labels)
      const getErrors = yield* countOf("cache_get_error_total", labels)
      const timeouts = yield* countOf("cache_timeout_total", {})
      yield* redis.push("get", ScriptedConnection.permanent("wrong_type"))
      yield* Effect.flip(cache.get("k"))
      expect((yield* countOf("cache_error_total", labels)) - errors).toBe(1)
      expect((yield* countOf("cache_get_error_total", labels)) - getErrors).toBe(1)
      // Not a timeout.
      expect((yield* countOf("cache_timeout_total", {})) - timeouts).toBe(0)
      expect((yield* cache.stats).errors["wrong_type"]).toBe(1)
    }).pipe(Effect.provide(scripted)))

  it.effect("a failed write is an error but not a get error", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      const labels = { operation: "set", backend: "redis", reason: "wrong_type" }
      const errors = yield* countOf("cache_error_total", labels)
      const getErrorsBefore = yield* Effect.map(
        Metric.snapshot,
        (pairs) => pairs.filter((p) => p.metricKey.name === "cache_get_error_total").length
      )
      yield* redis.push("set", ScriptedConnection.permanent("wrong_type"))
      yield* Effect.flip(cache.set("k", "v"))
      expect((yield* countOf("cache_error_total", labels)) - errors).toBe(1)
      expect(yield* countOf("cache_get_error_total", labels)).toBe(0)
      const getErrorsAfter = yield* Effect.map(
        Metric.snapshot,
        (pairs) => pairs.filter((p) => p.metricKey.name === "cache_get_error_total").length
      )
      expect(getErrorsAfter).toBe(getErrorsBefore)
    }).pipe(Effect.provide(scripted)))

  it.effect("a batch read that fails is a get error too (operation getMany)", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      const labels = { operation: "getMany", backend: "redis", reason: "wrong_type" }
      const getErrors = yield* countOf("cache_get_error_total", labels)
      yield* redis.push("mget", ScriptedConnection.permanent("wrong_type"))
      yield* Effect.flip(cache.getMany(["a", "b"]))
      expect((yield* countOf("cache_get_error_total", labels)) - getErrors).toBe(1)
    }).pipe(Effect.provide(scripted)))

  it.effect("a read that times out counts as a timeout, and as a get error with reason timeout", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      const labels = { operation: "get", backend: "redis", reason: "timeout" }
      const timeouts = yield* countOf("cache_timeout_total", {})
      const getErrors = yield* countOf("cache_get_error_total", labels)
      yield* redis.push("get", ScriptedConnection.slow("2 seconds"))
      const fiber = yield* Effect.fork(Effect.flip(cache.get("k")))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toMatchObject({ _tag: "TransientError", reason: "timeout" })
      expect((yield* countOf("cache_timeout_total", {})) - timeouts).toBe(1)
      expect((yield* countOf("cache_get_error_total", labels)) - getErrors).toBe(1)
    }).pipe(Effect.provide(scripted)))

  it.effect("a read refused with a socket timeout counts as a timeout too", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      const timeouts = yield* countOf("cache_timeout_total", {})
      yield* redis.push("get", ScriptedConnection.rejected("socket_timeout"))
      expect(yield* Effect.flip(cache.get("k"))).toMatchObject({ reason: "socket_timeout" })
      expect((yield* countOf("cache_timeout_total", {})) - timeouts).toBe(1)
      expect(yield* countOf("cache_get_error_total", { operation: "get", backend: "redis", reason: "socket_timeout" })).toBe(1)
    }).pipe(Effect.provide(scripted)))

  it.effect("latency is labelled by operation and backend only; a fallback by operation and backend only", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* cache.set("k", "v")
      const latencySeries = yield* Effect.map(Metric.snapshot, (pairs) =>
        pairs.filter((p) => p.metricKey.name === "cache_operation_duration_seconds").map((p) => labelsOf(p.metricKey.tags))
          // The untagged series is the one the first test registered by reading the metric.
          .filter((labels) => Object.keys(labels).length > 0))
      expect(latencySeries).toContainEqual({ operation: "set", backend: "redis" })
      expect(latencySeries.every((labels) => Object.keys(labels).sort().join() === "backend,operation")).toBe(true)
      const fallbacks = yield* countOf("cache_fallback_total", { operation: "get", backend: "resilient" })
      const errors = yield* countOf("cache_error_total", { operation: "get", backend: "redis", reason: "wrong_type" })
      yield* redis.push("get", ScriptedConnection.permanent("wrong_type"))
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      expect((yield* countOf("cache_fallback_total", { operation: "get", backend: "resilient" })) - fallbacks).toBe(1)
      const fallbackSeries = yield* Effect.map(Metric.snapshot, (pairs) =>
        pairs.filter((p) => p.metricKey.name === "cache_fallback_total").map((p) => labelsOf(p.metricKey.tags))
          .filter((labels) => Object.keys(labels).length > 0))
      expect(fallbackSeries.length).toBeGreaterThan(0)
      expect(fallbackSeries.every((labels) => Object.keys(labels).sort().join() === "backend,operation")).toBe(true)
      // The error behind the fallback is counted by the Redis layer, with its reason.
      expect((yield* countOf("cache_error_total", { operation: "get", backend: "redis", reason: "wrong_type" })) - errors).toBe(1)
    }).pipe(Effect.provide(
      ResilientCache.layer({ keyPrefix: "m:", retry: { get: Retry.none } }).pipe(Layer.provideMerge(ScriptedConnection.layer()))
    )))
})
