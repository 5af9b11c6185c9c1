import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { createServer } from "node:net"
import * as RedisConfig from "../src/RedisConfig.js"
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

describe("RedisConnection: coalesced commands skip ioredis' auto-pipelining", () => {
  it("clientOptions keeps auto-pipelining on, except for the batcher's MGET and MSET", () => {
    const config = Either.getOrThrow(RedisConfig.fromOptions({ url: REDIS_URL }))
    const options = RedisConnection.clientOptions(config, Either.getOrThrow(RedisConfig.parseUrl(config.url)))
    expect(options.enableAutoPipelining).toBe(true)
    expect(options.autoPipeliningIgnoredCommands).toEqual(["mget", "mset"])
  })

  it.live("a batched MGET / MSET does not wait behind the auto-pipeline in flight; TTL mixes answer each caller", () =>
    Effect.gen(function*() {
      const shared = new URL(REDIS_URL)
      const proxy = yield* ChaosProxy.make({ upstream: { host: shared.hostname, port: Number(shared.port || 6379) } })
      const redis = yield* RedisConnection.make(Either.getOrThrow(RedisConfig.fromOptions({ url: proxy.url() })))
      const k = (name: string) => `${prefix}ap:${name}`
      yield* redis.set(k("a"), "1", Option.none())
      // Replies take 250 ms: a plain GET (auto-pipelined) is in flight, and ioredis sends the next auto-pipeline of a
      // socket only once the previous one answered, so an auto-pipelined MGET / MSET would take ~500 ms.
      yield* proxy.setFault(ChaosProxy.Latency({ upstream: 0, downstream: "250 millis" }))
      const plain = yield* Effect.fork(redis.get(k("a")))
      yield* Effect.sleep("20 millis")
      const batched = yield* elapsed(Effect.all([
        redis.getBatched(k("a")),
        redis.getBatched(k("missing")),
        redis.setBatched(k("b"), "2", Option.none()),
        redis.setBatched(k("c"), "3", Option.none())
      ], { concurrency: "unbounded" }))
      expect(batched.exit).toEqual(Exit.succeed(["1", null, undefined, undefined]))
      expect(batched.ms).toBeLessThan(400)
      expect(yield* plain.await).toEqual(Exit.succeed("1"))
      // Without the latency: a batch with and without TTLs (one pipeline of SETs) and reads in the same tick.
      yield* proxy.setFault(ChaosProxy.PassThrough())
      const mixed = yield* Effect.all([
        redis.setBatched(k("d"), "4", Option.some(Duration.seconds(30))),
        redis.setBatched(k("e"), "5", Option.none()),
        redis.getBatched(k("b")),
        redis.getBatched(k("c"))
      ], { concurrency: "unbounded" })
      expect(mixed).toEqual([undefined, undefined, "2", "3"])
      expect(yield* redis.mget([k("d"), k("e")])).toEqual(["4", "5"])
      const pttl = yield* redis.execute("pttl", (c) => Promise.all([c.pttl(k("d")), c.pttl(k("e"))]))
      expect(pttl[0]).toBeGreaterThan(29_000)
      expect(pttl[1]).toBe(-1)
      yield* redis.del(["a", "b", "c", "d", "e"].map(k))
    }).pipe(Effect.scoped))
})
