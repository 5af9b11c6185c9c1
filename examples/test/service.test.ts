import { describe, expect, it } from "@effect/vitest"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpServer from "@effect/platform/HttpServer"
import { ResilientCache } from "@steadfast/cache"
import { PrometheusMetrics } from "@steadfast/otel"
import { RedisConnection } from "@steadfast/redis"
import { Retry } from "@steadfast/resilience"
import { RedisServer } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Service from "../src/service.js"

const PASSWORD = "service-test-secret-8c1f"
const fast = Retry.make({ maxRetries: 1, baseDelay: "5 millis", jitter: false })

/** The sum of a counter's series in a Prometheus scrape (0 when absent). */
const counter = (text: string, name: string) =>
  text
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0)

describe("the example HTTP service", () => {
  it.live("answers from the cache, keeps answering with Redis stopped (no 5xx), and its scrape shows the breaker and fallbacks", () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.make({ password: PASSWORD })
      const cache = ResilientCache.layer({
        keyPrefix: `steadfast:service-test:${process.pid}:`,
        retry: { get: fast, getMany: fast, set: fast, delete: fast },
        breaker: { failureThreshold: 2, halfOpenAfter: "30 seconds" }
      }).pipe(
        Layer.provide(RedisConnection.layer({ url: redis.url, commandTimeout: "300 millis", connectTimeout: "300 millis" }))
      )
      const context = yield* Layer.build(
        Service.layer({ port: 0, host: "127.0.0.1" }).pipe(
          Layer.provide(cache),
          Layer.provide(PrometheusMetrics.layer({ serviceName: "service-test" }))
        )
      )
      const address = (yield* Effect.provide(HttpServer.HttpServer, context)).address
      if (address._tag !== "TcpAddress") return expect.unreachable("a TCP address")
      const base = `http://127.0.0.1:${address.port}`
      const client = yield* HttpClient.HttpClient
      const get = (path: string) =>
        Effect.flatMap(client.get(`${base}${path}`), (response) =>
          Effect.map(response.text, (body) => ({ status: response.status, body })))

      // Healthy: a miss waits for the 20 ms database, the hit does not.
      const [first, firstResponse] = yield* Effect.timed(get("/products/42"))
      expect(firstResponse.status).toBe(200)
      expect(JSON.parse(firstResponse.body)).toEqual({ id: "42", name: "Product 42", priceCents: 1999 })
      expect(Duration.toMillis(first)).toBeGreaterThanOrEqual(20)
      expect((yield* get("/products/42")).status).toBe(200)
      const healthy = yield* get("/health/ready")
      expect(healthy.status).toBe(200)
      expect(JSON.parse(healthy.body)).toMatchObject({ status: "healthy", redis: "up", circuitState: "CLOSED" })
      const statsUp = JSON.parse((yield* get("/stats")).body)
      expect(statsUp).toMatchObject({ backend: "resilient", hits: 1 })
      const before = (yield* get("/metrics")).body
      expect(before).toMatch(/^# TYPE circuit_open_total counter$/m)
      expect(before).toMatch(/^# TYPE cache_fallback_total counter$/m)

      // Redis goes away: every endpoint keeps answering, none with a 5xx.
      yield* redis.stop
      const statuses: Array<number> = []
      for (let i = 0; i < 10; i++) {
        for (const path of ["/products/42", `/products/new-${i}`, "/health/live", "/health/ready", "/health", "/stats", "/metrics"]) {
          statuses.push((yield* get(path)).status)
        }
      }
      expect(statuses.filter((status) => status >= 500)).toEqual([])
      expect(new Set(statuses)).toEqual(new Set([200]))

      const live = yield* get("/health/live")
      expect(live.status).toBe(200)
      expect(JSON.parse(live.body)).toEqual({ status: "alive", cache: "degraded" })
      const degraded = yield* get("/health/ready")
      expect(degraded.status).toBe(200)
      expect(JSON.parse(degraded.body)).toMatchObject({ status: "degraded", redis: "down", circuitState: "OPEN" })

      const after = (yield* get("/metrics")).body
      expect(counter(after, "circuit_open_total")).toBeGreaterThan(counter(before, "circuit_open_total"))
      expect(counter(after, "cache_fallback_total")).toBeGreaterThan(counter(before, "cache_fallback_total"))

      // No password anywhere an operator looks.
      const stats = yield* get("/stats")
      expect(JSON.parse(stats.body)).toMatchObject({ backend: "resilient", circuitState: "OPEN" })
      expect(JSON.parse(stats.body).fallbacks).toBeGreaterThan(0)
      for (const body of [stats.body, degraded.body, live.body, after]) expect(body).not.toContain(PASSWORD)
    }).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer)))
})
