/**
 * Coalescing (internal/batcher.ts) as a user of `getBatched` / `setBatched` sees it, against a `redis-server` spawned
 * here (its command counts are this test's alone), found by mutation testing (MUTATION.md, "Redis"): every caller
 * gets its own key's answer in order, the batch bound of 256 is exact at both ends, a TTL write is one SET per caller
 * with each caller's TTL, a refused SET fails only its own caller, and a batch that cannot be sent fails every caller.
 * And a single caller is sent at once: after a tick that held one call, with no batch in flight, a call is written to
 * the socket in its own step (seen as the socket's `bytesWritten` right after the call); otherwise the tick's calls
 * wait for its end and share one request.
 */
import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { Redis } from "ioredis"
import * as RedisConfig from "../src/RedisConfig.js"
import { weighWrite } from "../src/internal/batcher.js"
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
        // Before each tick of the bound's: a tick of 1,024 reads, which makes the next tick's early part (a quarter of
        // the last tick's calls, sent when nothing is in flight) 256, the bound itself.
        if (n > 10) {
          yield* read(1024)
          last = yield* calls(server, "mget")
        }
        expect(yield* read(n, offset), `${n} reads`).toEqual(expected(n, offset))
        const now = yield* calls(server, "mget")
        counts.push(now - last)
        last = now
      }
      // 10 reads right after a tick of one: the first is sent at once (a single caller does not wait for the tick),
      // the other nine share an MGET. Every tick's reads share MGETs of at most 256.
      expect(counts).toEqual([1, 2, 1, 1, 2, 2, 2, 3])
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

describe("Batcher: coalesced reads' values", () => {
  it.scopedLive("values are decoded as UTF-8, answered as strings or (after large values) as Buffers: multi-byte characters, a value spanning many socket reads, empty and missing keys", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1 })
      // 3- and 4-byte characters, and ~300 KB of them: the reply arrives in many reads, split inside characters.
      const big = "é€𝄞".repeat(40_000)
      const large = "L".repeat(RedisConnection.largeValueBytes)
      const values = ["plain", "héllo wörld ✓ 🎉", "", big, large]
      yield* redis.mset(values.map((v, i) => [`u${i}`, v] as const), Option.none())
      const keys = ["u0", "u1", "missing", "u2", "u3"]
      const expected = ["plain", "héllo wörld ✓ 🎉", null, "", big]
      // The first batch is asked for as strings; one of large values switches the next to Buffers; small values
      // switch back. Every batch decodes the same.
      const batches: Array<ReadonlyArray<string>> = [keys, ["u4", "u4"], keys, ["u0", "u1"], keys, ["u0"], keys]
      for (const batch of batches) {
        const read = yield* together(batch.map((k) => redis.getBatched(k)))
        expect(read).toEqual(batch.map((k) => k === "missing" ? null : values[Number(k.slice(1))]))
      }
      expect(yield* together(keys.map((k) => redis.getBatched(k)))).toEqual(expected)
      // With nothing in flight a tick's first 2 reads (a quarter of the last tick's, at least 2) go as soon as they
      // are there: a tick of 5 keys is two MGETs, of 2 or 1 one. The tick after `["u0"]` (a tick of one call) sends
      // its first read at once, its other four in one MGET. 2 + 1 + 2 + 1 + 2 + 1 + 2, and 2 for the last tick.
      expect(yield* calls(server, "mget")).toBe(13)
    }))
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

  it.scopedLive("a write batch closes once its keys and values reach maxBatchBytes: the bound is exact", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1 })
      const quarter = RedisConnection.maxBatchBytes / 4
      // Keys of 2 characters and values making each write weigh exactly a quarter of the bound.
      const value = (i: number) => String(i).repeat(quarter - 2)
      const write = (n: number) => together(Array.from({ length: n }, (_, i) => redis.setBatched(`w${i}`, value(i), Option.none())))
      /** A tick of `n` small writes: the next tick's early part is then a quarter of `n` (see the reads' test). */
      const tickOf = (n: number) => together(Array.from({ length: n }, (_, i) => redis.setBatched(`p${i}`, "p", Option.none())))
      const counts: Array<number> = []
      let last = yield* calls(server, "mset")
      for (const n of [3, 4, 5, 9]) {
        // After a tick of 64 the early part is 16, more than these ticks hold: their batches are the bound's alone.
        yield* tickOf(64)
        last = yield* calls(server, "mset")
        yield* write(n)
        const now = yield* calls(server, "mset")
        counts.push(now - last)
        last = now
      }
      // 3 writes stay under the bound (one MSET at the tick's end); 4 reach it exactly (one MSET, sent at once, and no
      // empty one after it); 5 are 4 + 1; 9 are 4 + 4 + 1.
      expect(counts).toEqual([1, 1, 2, 3])
      expect(yield* redis.mget(Array.from({ length: 9 }, (_, i) => `w${i}`))).toEqual(Array.from({ length: 9 }, (_, i) => value(i)))
      const info = String(yield* server.command("INFO", "commandstats"))
      expect(/cmdstat_mset:[^\r\n]*failed_calls=0/.test(info), info).toBe(true)
      // One value over the bound is written alone; 100 B values fill maxBatch first (one MSET for 256 of them).
      yield* together([redis.setBatched("huge", "h".repeat(RedisConnection.maxBatchBytes), Option.none()), redis.setBatched("next", "n", Option.none())])
      expect((yield* calls(server, "mset")) - last).toBe(2)
      yield* tickOf(1024) // the next tick's early part: 256, the bound
      last = yield* calls(server, "mset")
      yield* together(Array.from({ length: 256 }, (_, i) => redis.setBatched(`s${i}`, "v".repeat(100), Option.none())))
      expect((yield* calls(server, "mset")) - last).toBe(1)
      expect(weighWrite(["ab", "cde", Option.none()])).toBe(5)
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

/**
 * The connection's one socket, watched: `written()` is its `bytesWritten`; `readInOneStep(keys)` reads `keys` in one
 * step (one tick) and tells, for each, whether the socket was written to by the call itself, with the answers once
 * they come.
 */
const watched = (redis: RedisConnection.RedisConnection) =>
  Effect.gen(function*() {
    let client: Redis | undefined
    yield* redis.watchSockets!({ ready: (_, ready) => (client = ready), closed: () => {} })
    const socket = () => client!
    const written = () => socket().stream.bytesWritten
    const readInOneStep = (keys: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const answers = yield* Effect.forEach(keys, () => Deferred.make<string | null, unknown>())
        const sentAtOnce = yield* Effect.sync(() =>
          keys.map((key, i) => {
            const before = written()
            redis.unsafeGetBatched!(key, (exit) => Deferred.unsafeDone(answers[i]!, exit))
            return written() > before
          })
        )
        return { sentAtOnce, answers: Effect.forEach(answers, Deferred.await) }
      })
    return { socket, written, readInOneStep }
  })

/** A spawned server holding k1..k3 (v1..v3), a connection of one socket to it, and that socket watched. */
const threeKeys = Effect.gen(function*() {
  const server = yield* RedisServer.make()
  const redis = yield* connect({ url: server.url, maxConnections: 1 })
  yield* redis.mset([["k1", "v1"], ["k2", "v2"], ["k3", "v3"]], Option.none())
  return { server, redis, ...yield* watched(redis) }
})

describe("Batcher: a single caller is sent at once", () => {
  it.scopedLive("after a tick of one call the next call is written in its own step; after a tick of several, or with a batch in flight, it waits for the tick", () =>
    Effect.gen(function*() {
      const { readInOneStep, redis, server, socket, written } = yield* threeKeys

      // A tick of one call, then one: sent at once.
      expect(yield* redis.getBatched("k1")).toBe("v1")
      const first = yield* readInOneStep(["k2"])
      expect(first.sentAtOnce).toEqual([true])
      expect(yield* first.answers).toEqual(["v2"])

      // Still a single caller: at once again; the tick's second call waits for the tick (and shares its MGET with
      // nothing else: two MGETs in all).
      const before = yield* calls(server, "mget")
      const two = yield* readInOneStep(["k1", "k3"])
      expect(two.sentAtOnce).toEqual([true, false])
      expect(yield* two.answers).toEqual(["v1", "v3"])
      expect((yield* calls(server, "mget")) - before).toBe(2)

      // That tick held two calls (one sent at once, one at the tick's end): the next call waits for its tick.
      const afterTwo = yield* readInOneStep(["k2"])
      expect(afterTwo.sentAtOnce).toEqual([false])
      expect(yield* afterTwo.answers).toEqual(["v2"])

      // After a tick of several (three reads: the first sent at once after that tick of one, two at the tick's end),
      // the next call waits for the tick too.
      expect(yield* together(["k1", "k2", "k3"].map((k) => redis.getBatched(k)))).toEqual(["v1", "v2", "v3"])
      const afterMany = yield* readInOneStep(["k1"])
      expect(afterMany.sentAtOnce).toEqual([false])
      expect(yield* afterMany.answers).toEqual(["v1"])

      // A tick of one (the one just above), but a batch still in flight (its reply held back in the kernel): the next
      // call waits for its tick.
      const held = yield* readInOneStep(["k2"])
      expect(held.sentAtOnce).toEqual([true])
      socket().stream.pause()
      const meanwhile = yield* readInOneStep(["k3"])
      expect(meanwhile.sentAtOnce).toEqual([false])
      yield* Effect.sleep("20 millis")
      socket().stream.resume()
      expect(yield* held.answers).toEqual(["v2"])
      expect(yield* meanwhile.answers).toEqual(["v3"])

      // Writes follow the same rule (their own batcher): a write alone, then one sent at once; the values land.
      yield* redis.setBatched("w1", "a", Option.none())
      const beforeWrite = written()
      const done = yield* Deferred.make<void, unknown>()
      yield* Effect.sync(() => redis.unsafeSetBatched!("w2", "b", Option.none(), (exit) => Deferred.unsafeDone(done, Exit.asVoid(exit))))
      expect(written()).toBeGreaterThan(beforeWrite)
      yield* Deferred.await(done)
      expect(yield* redis.mget(["w1", "w2"])).toEqual(["a", "b"])

      // A batch the server refuses (OOM) is no longer in flight: the next single caller is sent at once again.
      yield* server.command("CONFIG", "SET", "maxmemory", "1")
      const refused = yield* Effect.flip(redis.setBatched("w3", "c", Option.none()))
      expect(refused.message).toContain("OOM")
      yield* server.command("CONFIG", "SET", "maxmemory", "0")
      const beforeRetry = written()
      const retried = yield* Deferred.make<void, unknown>()
      yield* Effect.sync(() => redis.unsafeSetBatched!("w3", "c", Option.none(), (exit) => Deferred.unsafeDone(retried, Exit.asVoid(exit))))
      expect(written()).toBeGreaterThan(beforeRetry)
      yield* Deferred.await(retried)
      expect(yield* redis.mget(["w3"])).toEqual(["c"])
    }))
})

describe("Batcher: a tick's early part", () => {
  it.scopedLive("with nothing in flight, a tick's first calls (a quarter of the last tick's, at least 2) are written as soon as they are there and the rest at the tick's end; with a batch in flight, none early", () =>
    Effect.gen(function*() {
      const { readInOneStep, redis, server, socket } = yield* threeKeys
      const tickOf = (n: number) => together(Array.from({ length: n }, (_, i) => redis.getBatched(`k${1 + (i % 3)}`)))
      const mgets = () => calls(server, "mget")

      // After a tick of 8: the early part is 2; the tick's other three share the MGET sent at its end.
      yield* tickOf(8)
      let before = yield* mgets()
      const afterEight = yield* readInOneStep(["k1", "k2", "k3", "k1", "k2"])
      expect(afterEight.sentAtOnce).toEqual([false, true, false, false, false])
      expect(yield* afterEight.answers).toEqual(["v1", "v2", "v3", "v1", "v2"])
      expect((yield* mgets()) - before).toBe(2)

      // After a tick of 16: 4.
      yield* tickOf(16)
      before = yield* mgets()
      const afterSixteen = yield* readInOneStep(["k1", "k2", "k3", "k1", "k2", "k3"])
      expect(afterSixteen.sentAtOnce).toEqual([false, false, false, true, false, false])
      expect(yield* afterSixteen.answers).toEqual(["v1", "v2", "v3", "v1", "v2", "v3"])
      expect((yield* mgets()) - before).toBe(2)

      // After a tick of 5: ceil(5 / 4) is 2 (a quarter rounded up); after a tick of 2 or 3 it is 2 too (at least 2).
      yield* tickOf(5)
      expect((yield* readInOneStep(["k1", "k2", "k3"])).sentAtOnce).toEqual([false, true, false])
      yield* tickOf(3)
      const afterThree = yield* readInOneStep(["k1", "k2"])
      expect(afterThree.sentAtOnce).toEqual([false, true])
      expect(yield* afterThree.answers).toEqual(["v1", "v2"])

      // A batch in flight (its reply held back in the kernel): the next tick sends nothing early, whatever its size.
      yield* tickOf(8)
      const held = yield* readInOneStep(["k1", "k2"])
      expect(held.sentAtOnce).toEqual([false, true])
      socket().stream.pause()
      const meanwhile = yield* readInOneStep(["k3", "k1", "k2", "k3"])
      expect(meanwhile.sentAtOnce).toEqual([false, false, false, false])
      yield* Effect.sleep("20 millis")
      socket().stream.resume()
      expect(yield* held.answers).toEqual(["v1", "v2"])
      expect(yield* meanwhile.answers).toEqual(["v3", "v1", "v2", "v3"])
    }))
})
