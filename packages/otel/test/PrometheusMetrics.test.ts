import { describe, expect, it } from "@effect/vitest"
import { Cache, ResilientCache, TypedCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import { Retry } from "@steadfast/resilience"
import { RedisServer } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import parse from "parse-prometheus-text-format"
import * as PrometheusMetrics from "../src/PrometheusMetrics.js"

/** Every metric the README's Observability table lists, with the Prometheus type it must be exported as. */
const expected: Record<string, "COUNTER" | "GAUGE" | "HISTOGRAM"> = {
  cache_get_error_total: "COUNTER",
  cache_timeout_total: "COUNTER",
  circuit_open_total: "COUNTER",
  redis_connection_pool_size: "GAUGE",
  redis_health_check_interval: "GAUGE",
  redis_health_check_failure_total: "COUNTER",
  cache_hit_total: "COUNTER",
  cache_miss_total: "COUNTER",
  cache_fallback_total: "COUNTER",
  cache_error_total: "COUNTER",
  cache_decode_error_total: "COUNTER",
  cache_pending_read_total: "COUNTER",
  cache_pending_keys: "GAUGE",
  cache_reconciled_total: "COUNTER",
  cache_reconcile_overflow_total: "COUNTER",
  cache_operation_duration_seconds: "HISTOGRAM",
  // The hybrid cache's: listed from the first scrape although this test drives no hybrid cache.
  cache_stale_served_total: "COUNTER",
  cache_factory_event_total: "COUNTER"
}

const fast = Retry.make({ maxRetries: 1, baseDelay: "5 millis", jitter: false })

describe("PrometheusMetrics.layer", () => {
  it.live("a scrape after driving a resilient cache through an outage lists every metric with its Prometheus type", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const cacheLayer = ResilientCache.layer({
        keyPrefix: `steadfast:otel-test:${process.pid}:`,
        retry: { get: fast, getMany: fast, set: fast, delete: fast },
        breaker: { failureThreshold: 2, halfOpenAfter: "10 seconds" }
      }).pipe(Layer.provide(RedisConnection.layer({ url: server.url, commandTimeout: "300 millis", connectTimeout: "300 millis" })))
      const text = yield* Effect.gen(function*() {
        const numbers = TypedCache.make(yield* Cache.Cache, Schema.NumberFromString)
        yield* numbers.set("a", 1)
        expect(yield* numbers.get("a")).toEqual(Option.some(1))
        expect(yield* numbers.get("missing")).toEqual(Option.none())
        yield* server.stop
        for (let i = 0; i < 5; i++) yield* numbers.get("a")
        return yield* Effect.flatMap(PrometheusMetrics.PrometheusMetrics, (p) => p.scrape)
      }).pipe(Effect.provide(Layer.merge(cacheLayer, PrometheusMetrics.layer({ serviceName: "otel-test" }))))

      const families = new Map(parse(text).map((family) => [family.name, family]))
      for (const [name, type] of Object.entries(expected)) {
        expect(families.get(name)?.type, name).toBe(type)
      }
      // The TYPE lines themselves, as Prometheus reads them.
      expect(text).toMatch(/^# TYPE circuit_open_total counter$/m)
      expect(text).toMatch(/^# TYPE cache_operation_duration_seconds histogram$/m)
      // No Effect counter came out as a gauge (that is what a counter without `incremental: true` would do).
      for (const family of families.values()) {
        if (family.name.endsWith("_total")) expect(family.type, family.name).toBe("COUNTER")
      }
      const sum = (name: string) =>
        (families.get(name)?.metrics ?? []).reduce((total, sample) => total + Number(sample.value ?? 0), 0)
      expect(sum("cache_hit_total")).toBeGreaterThanOrEqual(1)
      expect(sum("cache_miss_total")).toBeGreaterThanOrEqual(1)
      expect(sum("circuit_open_total")).toBeGreaterThanOrEqual(1)
      expect(sum("cache_fallback_total")).toBeGreaterThanOrEqual(1)
      // The histogram keeps Effect's boundaries.
      const latency = families.get("cache_operation_duration_seconds")!.metrics
      const buckets = Object.keys(latency.find((sample) => sample.buckets !== undefined)!.buckets!)
      expect(buckets[0]).toBe("0.00005")
      expect(buckets).toContain("+Inf")
      // `MetricBoundaries.exponential({ start: 0.00005, factor: 2, count: 18 })`: 17 bounds up to 3.2768 s, then +Inf.
      expect(buckets.length).toBe(18)
      expect(buckets[16]).toBe("3.2768")
      // Tagged like the Effect metric (the parser folds a histogram's label sets together, so read the text).
      const redisGets = text.match(/^cache_operation_duration_seconds_count\{operation="get",backend="redis"[^}]*\} (\d+)$/m)
      expect(Number(redisGets?.[1])).toBeGreaterThan(0)
    }).pipe(Effect.scoped))

  it.live("with a port, the exporter serves GET /metrics itself and stops with the layer", () =>
    Effect.gen(function*() {
      const net = yield* Effect.promise(() => import("node:net"))
      const port = yield* Effect.async<number>((resume) => {
        const probe = net.createServer().listen(0, "127.0.0.1", () => {
          const address = probe.address() as { port: number }
          probe.close(() => resume(Effect.succeed(address.port)))
        })
      })
      const body = yield* Effect.gen(function*() {
        const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`))
        return yield* Effect.promise(() => response.text())
      }).pipe(Effect.provide(PrometheusMetrics.layer({ port, host: "127.0.0.1" })))
      expect(body).toMatch(/^# TYPE cache_timeout_total counter$/m)
      const after = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then(() => "open", () => "closed"))
      expect(after).toBe("closed")
    }))
})
