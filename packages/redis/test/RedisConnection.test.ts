import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { createServer } from "node:net"
import * as RedisConnection from "../src/RedisConnection.js"

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const prefix = `steadfast:test:conn:${process.pid}:${Math.random().toString(36).slice(2)}:`

/** A port nothing listens on: bind, read it, close. */
const deadPort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const elapsed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    const exit = yield* Effect.exit(self)
    return { exit, ms: performance.now() - start }
  })

describe("RedisConnection (shared Redis)", () => {
  const connected = RedisConnection.layer({ url: REDIS_URL, maxConnections: 2 })

  it.live("GET/SET/MGET/MSET/DEL round-trip", () =>
    Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      yield* redis.set(`${prefix}a`, "1", Option.none())
      yield* redis.mset([[`${prefix}b`, "2"], [`${prefix}c`, "3"]], Option.none())
      expect(yield* redis.get(`${prefix}a`)).toBe("1")
      expect(yield* redis.get(`${prefix}missing`)).toBeNull()
      expect(yield* redis.mget([`${prefix}a`, `${prefix}b`, `${prefix}missing`, `${prefix}c`])).toEqual(["1", "2", null, "3"])
      expect(yield* redis.del([`${prefix}a`, `${prefix}b`, `${prefix}c`])).toBe(3)
      expect(yield* redis.mget([])).toEqual([])
      expect(yield* redis.del([])).toBe(0)
    }).pipe(Effect.provide(connected)))

  it.live("SET and MSET with a TTL set PX on the key", () =>
    Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      yield* redis.set(`${prefix}ttl`, "v", Option.some(Duration.seconds(30)))
      yield* redis.mset([[`${prefix}ttl2`, "v"]], Option.some(Duration.millis(1500)))
      const pttl = yield* redis.execute("pttl", (c) => Promise.all([c.pttl(`${prefix}ttl`), c.pttl(`${prefix}ttl2`)]))
      expect(pttl[0]).toBeGreaterThan(29_000)
      expect(pttl[0]).toBeLessThanOrEqual(30_000)
      expect(pttl[1]).toBeGreaterThan(0)
      expect(pttl[1]).toBeLessThanOrEqual(1500)
      yield* redis.del([`${prefix}ttl`, `${prefix}ttl2`])
    }).pipe(Effect.provide(connected)))

  it.live("uses the configured number of sockets, all ready", () =>
    Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      expect(yield* redis.status).toEqual(["ready", "ready"])
      // The original service's gauges: ready sockets, and the health-check interval in seconds (default 30).
      expect((yield* Metric.value(RedisConnection.poolSizeGauge)).value).toBe(2)
      expect((yield* Metric.value(RedisConnection.healthCheckIntervalGauge)).value).toBe(30)
      // Round-robin: both sockets serve commands.
      const ids = yield* Effect.forEach([1, 2, 3, 4], () => redis.execute("client_id", (c) => c.client("ID")))
      expect(new Set(ids).size).toBe(2)
    }).pipe(Effect.provide(connected)))

  it.live("a Redis error reply is a typed PermanentError", () =>
    Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      yield* redis.execute("lpush", (c) => c.lpush(`${prefix}list`, "x"))
      const error = yield* Effect.flip(redis.get(`${prefix}list`))
      expect(error).toMatchObject({ _tag: "PermanentError", reason: "wrong_type", operation: "get" })
      yield* redis.del([`${prefix}list`])
    }).pipe(Effect.provide(connected)))

  it.live("the layer quits its sockets when the scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(connected, scope)
      const redis = context.unsafeMap.get(RedisConnection.RedisConnection.key) as RedisConnection.RedisConnection
      expect(yield* redis.status).toEqual(["ready", "ready"])
      yield* Scope.close(scope, Exit.void)
      expect(yield* redis.status).toEqual(["end", "end"])
    }))
})

describe("RedisConnection (Redis down)", () => {
  it.live("builds although nothing listens, and fails fast with a TransientError", () =>
    Effect.gen(function*() {
      const port = yield* deadPort
      const layer = RedisConnection.layer({ url: `redis://127.0.0.1:${port}`, connectTimeout: "300 millis" })
      const build = yield* elapsed(
        Effect.gen(function*() {
          const redis = yield* RedisConnection.RedisConnection
          const first = yield* elapsed(redis.get("k"))
          // 1,000 calls while down: every one fails at once, nothing is queued.
          const burst = yield* elapsed(Effect.forEach(Array.from({ length: 1000 }, (_, i) => i), (i) => Effect.flip(redis.get(`k${i}`)), { concurrency: 100 }))
          const queued = yield* redis.execute("peek", async (c) => (c as unknown as { offlineQueue: { length: number } }).offlineQueue.length).pipe(Effect.either)
          return { first, burst, queued }
        }).pipe(Effect.provide(layer))
      )
      if (!Exit.isSuccess(build.exit)) console.log(String(build.exit.cause))
      expect(Exit.isSuccess(build.exit)).toBe(true)
      if (!Exit.isSuccess(build.exit)) return
      const { first, burst } = build.exit.value
      expect(Exit.isFailure(first.exit)).toBe(true)
      if (Exit.isFailure(first.exit)) {
        const error = first.exit.cause._tag === "Fail" ? first.exit.cause.error : undefined
        expect(error?._tag).toBe("TransientError")
      }
      expect(first.ms).toBeLessThan(100)
      expect(Exit.isSuccess(burst.exit)).toBe(true)
      if (Exit.isSuccess(burst.exit)) {
        expect(burst.exit.value.every((e) => e._tag === "TransientError")).toBe(true)
      }
      // Building waits at most for the connect timeout; closing quits within its bound.
      expect(build.ms).toBeLessThan(2500)
    }))
})
