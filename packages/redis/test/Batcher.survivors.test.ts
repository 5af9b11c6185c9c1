/**
 * Coalescing (internal/batcher.ts) as a user of `getBatched` / `setBatched` sees it, against a `redis-server` spawned
 * here (its command counts are this test's alone), found by mutation testing (MUTATION.md, "Redis"): every caller
 * gets its own key's answer in order, the batch bound of 256 is exact at both ends, a TTL write is one SET per caller
 * with each caller's TTL, a refused SET fails only its own caller, and a batch that cannot be sent fails every caller.
 */
import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as RedisConfig from "../src/RedisConfig.js"
import * as RedisConnection from "../src/RedisConnection.js"

const connect = (options: RedisConfig.Options) => Effect.flatMap(Effect.orDie(RedisConfig.fromOptions(options)), RedisConnection.make)

const calls = (server: RedisServer.RedisServer, command: string) =>
  Effect.map(server.command("INFO", "commandstats"), (reply) => {
    const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(reply))
    return match === null ? 0 : Number(match[1])
  })

const together = <A, E>(effects: ReadonlyArray<Effect.Effect<A, E>>) => Effect.all(effects, { concurrency: "unbounded" })

describe("Batcher: coalesced reads", () => {
  it.scopedLive("reads of one tick are one MGET and each caller gets its own key's value; the bound of 256 is exact", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1 })
      yield* redis.mset(Array.from({ length: 600 }, (_, i) => [`k${i}`, `v${i}`] as const), Option.none())
      const read = (n: number, offset = 0) =>
        together(Array.from({ length: n }, (_, i) => redis.getBatched(i % 7 === 3 ? `missing${i}` : `k${i + offset}`)))
      const expected = (n: number, offset = 0) =>
        Array.from({ length: n }, (_, i) => (i % 7 === 3 ? null : `v${i + offset}`))
      const counts: Array<number> = []
      let last = yield* calls(server, "mget")
      for (const [n, offset] of [[1, 5], [10, 0], [255, 1], [256, 2], [257, 3], [511, 0], [512, 4], [513, 5]] as const) {
        expect(yield* read(n, offset), `${n} reads`).toEqual(expected(n, offset))
        const now = yield* calls(server, "mget")
        counts.push(now - last)
        last = now
      }
      expect(counts).toEqual([1, 1, 1, 1, 2, 2, 2, 3])
      // A batch flushed at the bound leaves nothing for the tick's flush: no MGET without keys reaches the server.
      const info = String(yield* server.command("INFO", "commandstats"))
      expect(/cmdstat_mget:[^\r\n]*failed_calls=0/.test(info) && /cmdstat_mget:[^\r\n]*rejected_calls=0/.test(info), info).toBe(true)
      // Reads in successive ticks are separate requests.
      expect(yield* redis.getBatched("k1")).toBe("v1")
      expect(yield* redis.getBatched("k2")).toBe("v2")
      expect((yield* calls(server, "mget")) - last).toBe(2)
    }))

  it.scopedLive("a batch that cannot be sent fails every caller, with the connection's error; later batches work", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1, commandTimeout: "1 second" })
      yield* redis.set("k", "v", Option.none())
      yield* server.stop
      // Each caller fails with the error of the request (not at the deadline, not with a timeout), all with the same.
      const started = Date.now()
      const failures = yield* together(Array.from({ length: 5 }, (_, i) => Effect.flip(redis.getBatched(`k${i}`))))
      const writes = yield* together(Array.from({ length: 3 }, (_, i) => Effect.flip(redis.setBatched(`w${i}`, "v", Option.none()))))
      expect(Date.now() - started).toBeLessThan(900)
      for (const error of [...failures, ...writes]) {
        expect(error._tag).toBe("TransientError")
        expect(error._tag === "TransientError" && error.reason).not.toBe("timeout")
      }
      expect(new Set(failures.map((e) => e.message)).size).toBe(1)
      expect(failures.map((e) => e.operation)).toEqual(["get", "get", "get", "get", "get"])
      expect(writes.map((e) => e.operation)).toEqual(["set", "set", "set"])
      yield* server.start
      yield* redis.ready
      yield* redis.set("k", "again", Option.none()) // the spawned server keeps no data across a restart
      expect(yield* together([redis.getBatched("k"), redis.getBatched("nope")])).toEqual(["again", null])
    }), { timeout: 30_000 })
})

describe("Batcher: the batch's deadline", () => {
  it.scopedLive("a stalled server: every coalesced caller fails with its deadline (timeout), before the socket is dropped", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      // Deadline 2 s (fails within [1.8, 1.9] s); the silent socket is only dropped at 2.5 s.
      const redis = yield* connect({ url: proxy.url(), maxConnections: 1, commandTimeout: "2 seconds" })
      yield* redis.ready
      yield* proxy.setFault(ChaosProxy.Stall())
      const [reads, writes] = yield* Effect.all([
        together([redis.getBatched("a"), redis.getBatched("b")].map(Effect.flip)),
        together([redis.setBatched("a", "1", Option.none()), redis.setBatched("b", "2", Option.none())].map(Effect.flip))
      ], { concurrency: "unbounded" })
      for (const error of reads) {
        expect(error).toMatchObject({ _tag: "TransientError", operation: "get", reason: "timeout", outcome: "unknown" })
        expect(error.message).toBe("get exceeded its 2000 ms deadline")
      }
      for (const error of writes) {
        expect(error).toMatchObject({ _tag: "TransientError", operation: "set", reason: "timeout", outcome: "unknown" })
        expect(error.message).toBe("set exceeded its 2000 ms deadline")
      }
    }), { timeout: 30_000 })
})

describe("Batcher: coalesced writes", () => {
  it.scopedLive("writes with a TTL are one SET per caller, each with its own TTL; without, one MSET", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1 })
      yield* together([
        redis.setBatched("a", "1", Option.some(Duration.seconds(100))),
        redis.setBatched("b", "2", Option.none()),
        redis.setBatched("c", "3", Option.some(Duration.seconds(300)))
      ])
      expect(yield* calls(server, "set")).toBe(3)
      expect(yield* calls(server, "mset")).toBe(0)
      const ttl = (key: string) => Effect.map(server.command("PTTL", key), Number)
      const [a, b, c] = [yield* ttl("a"), yield* ttl("b"), yield* ttl("c")]
      expect(a).toBeGreaterThan(99_000)
      expect(a).toBeLessThanOrEqual(100_000)
      expect(b).toBe(-1)
      expect(c).toBeGreaterThan(299_000)
      expect(yield* redis.mget(["a", "b", "c"])).toEqual(["1", "2", "3"])
      yield* together([redis.setBatched("d", "4", Option.none()), redis.setBatched("e", "5", Option.none())])
      expect(yield* calls(server, "mset")).toBe(1)
      expect(yield* redis.mget(["d", "e"])).toEqual(["4", "5"])
    }))

  it.scopedLive("a SET refused in a batch fails only its caller; the others' writes land", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({
        users: [{ username: "app", password: "pw", rules: "on >pw ~ok:* +@all" }]
      })
      const redis = yield* connect({ url: `redis://app:pw@${server.host}:${server.port}`, maxConnections: 1 })
      const ttl = Option.some(Duration.seconds(60))
      const results = yield* together([
        Effect.either(redis.setBatched("ok:1", "1", ttl)),
        Effect.either(redis.setBatched("no:2", "2", ttl)),
        Effect.either(redis.setBatched("ok:3", "3", Option.none()))
      ])
      expect(results.map((r) => r._tag)).toEqual(["Right", "Left", "Right"])
      expect(results[1]!._tag === "Left" && results[1]!.left).toMatchObject({
        _tag: "PermanentError",
        reason: "no_permission",
        operation: "set"
      })
      expect(yield* redis.mget(["ok:1", "ok:3"])).toEqual(["1", "3"])
    }))
})
