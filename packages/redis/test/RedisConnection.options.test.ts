/**
 * What `clientOptions` (exported so users and benchmarks can see what differs from ioredis' defaults) promises for a
 * standalone connection, the reconnect backoff it hands ioredis, and the metric names dashboards read. Sentinel and
 * Cluster options are asserted in Sentinel.test.ts / Cluster.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as RedisConfig from "../src/RedisConfig.js"
import * as RedisConnection from "../src/RedisConnection.js"

const optionsOf = (options: RedisConfig.Options) => {
  const config = Either.getOrThrow(RedisConfig.fromOptions(options))
  return RedisConnection.clientOptions(config, Either.getOrThrow(RedisConfig.parseUrl(config.url)))
}

describe("clientOptions (standalone)", () => {
  it("bounded outages: no offline queue, nothing re-sent, keepalive, one name; no ioredis socket timeout (see below)", () => {
    const o = optionsOf({ url: "redis://cache.internal:6380/3", commandTimeout: "2 seconds" })
    expect(o).toMatchObject({
      host: "cache.internal",
      port: 6380,
      db: 3,
      lazyConnect: true,
      connectTimeout: 2000,
      keepAlive: 60_000,
      noDelay: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      reconnectOnError: null,
      disableClientInfo: true,
      disconnectTimeout: 100,
      maxLoadingRetryTime: 500,
      connectionName: "steadfast"
    })
    // ioredis' socket timeout costs a timer and a listener per write: the connection watches silence itself
    // (RedisConnection.silence.test.ts), with the limit below.
    expect(o).not.toHaveProperty("socketTimeout")
    // No credentials, no TLS, no Sentinel options on a plain URL.
    expect(o.username).toBeUndefined()
    expect(o.password).toBeUndefined()
    expect(o.tls).toBeUndefined()
    expect(o).not.toHaveProperty("sentinels")
    expect(o).not.toHaveProperty("failoverDetector")
  })

  it("the socket timeout (a Cluster node's ioredis option) is at least 50 ms after a short deadline, a quarter after a long one", () => {
    const socketTimeoutOf = (commandTimeout: `${number} millis`) => {
      const config = Either.getOrThrow(RedisConfig.fromOptions({ url: "redis+cluster://h:7000", commandTimeout }))
      const url = Either.getOrThrow(RedisConfig.parseUrl(config.url))
      if (url.topology !== "cluster") throw new Error("not a cluster URL")
      return RedisConnection.clusterOptions(config, url).redisOptions?.socketTimeout
    }
    expect(socketTimeoutOf("100 millis")).toBe(150)
    expect(socketTimeoutOf("198 millis")).toBe(248)
    expect(socketTimeoutOf("1000 millis")).toBe(1250)
    expect(socketTimeoutOf("1002 millis")).toBe(1253)
  })

  it("credentials from the URL; TLS verifies, names the host for SNI (not an IP) and trusts the given CA", () => {
    const o = optionsOf({ url: "rediss://app:s3cret@cache.example.com:6390", tlsCa: "-----BEGIN CERTIFICATE-----" })
    expect(o.username).toBe("app")
    expect(o.password).toBe("s3cret")
    expect(o.tls).toEqual({ rejectUnauthorized: true, servername: "cache.example.com", ca: "-----BEGIN CERTIFICATE-----" })
    expect(optionsOf({ url: "rediss://10.0.0.7:6390" }).tls).toEqual({ rejectUnauthorized: true })
    expect(optionsOf({ url: "rediss://[::1]:6390" }).tls).toEqual({ rejectUnauthorized: true })
    expect(optionsOf({ url: "rediss://cache.example.com" }).tls).toEqual({
      rejectUnauthorized: true,
      servername: "cache.example.com"
    })
  })

  it("reconnects: the first attempt within 20 ms, then 50 ms doubling to a 500 ms cap, plus up to 50 ms of jitter", () => {
    const retry = optionsOf({ url: "redis://h" }).retryStrategy!
    const range = (attempt: number) => {
      const delays = Array.from({ length: 400 }, () => retry(attempt) as number)
      return [Math.min(...delays), Math.max(...delays)] as const
    }
    for (const attempt of [0, 1]) {
      const [min, max] = range(attempt)
      expect(min).toBeGreaterThanOrEqual(0)
      expect(max).toBeLessThan(20)
      expect(max).toBeGreaterThan(0)
    }
    const expected: Record<number, number> = { 2: 50, 3: 100, 4: 200, 5: 400, 6: 500, 12: 500, 1000: 500 }
    for (const [attempt, base] of Object.entries(expected)) {
      const [min, max] = range(Number(attempt))
      expect(min).toBeGreaterThanOrEqual(base)
      expect(max).toBeLessThan(base + 50)
      // The jitter is there: 400 draws in [base, base + 50) are not all the same.
      expect(max).toBeGreaterThan(min)
      expect(Number.isInteger(min) && Number.isInteger(max)).toBe(true)
    }
  })

  it("the Sentinel retry pause follows the same backoff one attempt later", () => {
    const o = optionsOf({ url: "redis+sentinel://s1/mymaster", commandTimeout: "800 millis" })
    const retry = o.sentinelRetryStrategy!
    const draws = (attempt: number) => Array.from({ length: 300 }, () => retry(attempt) as number)
    // Attempt 1 is the socket's second attempt: 50 ms plus jitter, not "at once".
    expect(Math.min(...draws(1))).toBeGreaterThanOrEqual(50)
    expect(Math.max(...draws(1))).toBeLessThan(100)
    expect(Math.min(...draws(2))).toBeGreaterThanOrEqual(100)
    // The sentinels' reconnect: 100 ms doubling to 2 s.
    const reconnect = o.sentinelReconnectStrategy!
    expect([0, 1, 2, 3, 4, 5, 6, 40].map((n) => reconnect(n))).toEqual([100, 100, 200, 400, 800, 1600, 2000, 2000])
    expect(o.sentinelCommandTimeout).toBe(800)
    const onError = o.reconnectOnError as (e: Error) => unknown
    // Only a reply that starts with READONLY drops the socket.
    expect(onError(new Error("ERR READONLY mentioned later"))).toBe(false)
  })
})

describe("metrics dashboards read", () => {
  it.effect("names and descriptions", () =>
    Effect.gen(function*() {
      // Touch each metric so it is in the registry, then read the registry as an exporter does.
      yield* Metric.value(RedisConnection.poolSizeGauge)
      yield* Metric.value(RedisConnection.healthCheckIntervalGauge)
      yield* Metric.value(RedisConnection.healthCheckFailures)
      const described = new Map(
        (yield* Metric.snapshot).map((pair) => [pair.metricKey.name, Option.getOrUndefined(pair.metricKey.description)])
      )
      expect(described.get("redis_connection_pool_size")).toBe("Redis sockets currently ready")
      expect(described.get("redis_health_check_interval")).toBe("Seconds a Redis socket may stay idle before it is PINGed")
      expect(described.get("redis_health_check_failure_total")).toBe("Idle-socket PINGs that failed and forced a reconnect")
    }))
})
