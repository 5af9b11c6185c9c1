/**
 * The resilient cache's decisions under `TestClock`, over a scripted connection (each command's fate is scripted:
 * ok, not sent, sent with its reply lost, rejected, slow, permanent). What only a socket shows is in
 * Consistency.test.ts and the chaos matrix.
 */
import { describe, expect, it } from "@effect/vitest"
import { ScriptedConnection } from "@steadfast/redis"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { Cache } from "../src/Cache.js"
import * as CacheMetrics from "../src/CacheMetrics.js"
import * as MemoryCache from "../src/MemoryCache.js"
import { scriptedResilient as scripted, settle } from "./utils.js"

const commands = (name: ScriptedConnection.Command) =>
  Effect.map(Effect.flatMap(ScriptedConnection.ScriptedConnection, (s) => s.log), (log) => log.filter((e) => e.command === name))

describe("ResilientCache decisions (scripted connection, TestClock)", () => {
  it.effect("overlapping writes leave no fallback copy; an abandoned write (caller interrupted) stops counting a fence after the first write that joined it", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      // Two writes whose callers are interrupted while Redis has them: they never end, as far as the cache knows.
      yield* redis.push("set", ScriptedConnection.slow("400 millis"), ScriptedConnection.slow("400 millis"))
      const abandoned = [yield* Effect.fork(cache.set("x", "abandoned")), yield* Effect.fork(cache.set("y", "abandoned"))]
      yield* settle
      for (const fiber of abandoned) yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("1 second")
      // Each overlaps its key's abandoned write: acknowledged, but no copy (the fence: 2 x 500 ms + 1 s = 2 s from here).
      yield* cache.set("x", "one")
      yield* cache.set("y", "one")
      yield* TestClock.adjust("1999 millis")
      yield* cache.set("x", "two")
      yield* TestClock.adjust("1 millis")
      yield* cache.set("y", "two")
      // A write with nothing else under way keeps its copy.
      yield* cache.set("z", "alone")
      // Redis answers no read now: the fallback does.
      yield* redis.push("get", ScriptedConnection.replyLost, ScriptedConnection.replyLost, ScriptedConnection.replyLost)
      expect(yield* cache.get("x")).toEqual(Option.none())
      expect(yield* cache.get("y")).toEqual(Option.some("two"))
      expect(yield* cache.get("z")).toEqual(Option.some("alone"))
      expect(yield* redis.peek("t:x")).toBe("two")
    }).pipe(Effect.provide(scripted())))

  it.effect("a write whose reply is lost is pending: its reads skip Redis; reconciliation deletes the key", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("t:k", "old")
      yield* redis.push("set", ScriptedConnection.replyLost, ScriptedConnection.ok)
      // The reconciler must not run before the read: hold its DEL back for a moment.
      yield* redis.push("del", ScriptedConnection.slow("50 millis"))
      yield* cache.set("k", "new")
      // Applied on the server, reply lost: Redis holds "new" here, but the cache cannot know it.
      expect(yield* redis.peek("t:k")).toBe("new")
      const getsBefore = (yield* commands("get")).length
      expect(yield* cache.get("k")).toEqual(Option.some("new"))
      expect((yield* commands("get")).length).toBe(getsBefore)
      expect((yield* cache.stats).reconciliation).toMatchObject({ pendingKeys: 1, localReads: 1 })
      yield* TestClock.adjust("50 millis")
      yield* settle
      expect(yield* redis.peek("t:k")).toBeNull()
      const stats = yield* cache.stats
      expect(stats.reconciliation).toMatchObject({ pendingKeys: 0, reconciledKeys: 1 })
      expect(stats.fallbacks).toBe(1)
      // Reconciled: Redis is read again (a miss, and the fallback's copy goes with it).
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect((yield* commands("get")).length).toBe(getsBefore + 1)
    }).pipe(Effect.provide(scripted())))

  it.effect("a write that never left is sent again within the call: no fallback, nothing pending", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.push("set", ScriptedConnection.notSent)
      yield* cache.set("k", "v")
      expect(yield* redis.peek("t:k")).toBe("v")
      const sets = yield* commands("set")
      expect(sets.map((e) => e.applied)).toEqual([false, true])
      const stats = yield* cache.stats
      expect(stats.fallbacks).toBe(0)
      expect(stats.reconciliation?.pendingKeys).toBe(0)
      expect(stats.errors).toEqual({})
    }).pipe(Effect.provide(scripted())))

  it.effect("a write whose reply is lost is not sent again (it may have run), and a rejected one is pending too", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.push("del", ScriptedConnection.slow("1 second"))
      yield* redis.push("set", ScriptedConnection.replyLost, ScriptedConnection.rejected("read_only"))
      yield* cache.set("a", "1")
      yield* cache.set("b", "2")
      expect((yield* commands("set")).length).toBe(2)
      expect(yield* redis.peek("t:a")).toBe("1")
      expect(yield* redis.peek("t:b")).toBeNull()
      const stats = yield* cache.stats
      expect(stats.reconciliation?.pendingKeys).toBe(2)
      expect(stats.errors).toEqual({ connection_closed: 1, read_only: 1 })
    }).pipe(Effect.provide(scripted())))

  it.effect("a read in flight when its key becomes pending answers the newer local value, not Redis' reply", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("t:k", "old")
      yield* redis.push("get", ScriptedConnection.slow("200 millis"))
      yield* redis.push("set", ScriptedConnection.rejected("read_only"))
      yield* redis.push("del", ScriptedConnection.slow("1 second"))
      const read = yield* Effect.fork(cache.get("k"))
      yield* settle
      yield* cache.set("k", "new")
      yield* TestClock.adjust("200 millis")
      expect(yield* Fiber.join(read)).toEqual(Option.some("new"))
      // And the fallback holds "new": a later outage serves it, never "old".
      yield* redis.down()
      expect(yield* cache.get("k")).toEqual(Option.some("new"))
    }).pipe(Effect.provide(scripted())))

  it.effect("a read that mirrors a value while a delete of its key is in flight never brings it back", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("t:gone", "old")
      yield* redis.put("t:kept", "old")
      // Both deletes wait 100 ms; the first is then refused (falls back, pending), the second runs.
      yield* redis.push("del", ScriptedConnection.slow("100 millis", ScriptedConnection.rejected("read_only")))
      yield* redis.push("del", ScriptedConnection.slow("1 second"), ScriptedConnection.slow("100 millis"))
      const first = yield* Effect.fork(cache.delete("gone"))
      yield* settle
      // Started after the delete, answered before it: Redis still had the value (and the read may mirror it).
      expect(yield* cache.get("gone")).toEqual(Option.some("old"))
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(first)).toBe(false)
      // The delete was acknowledged: the value it removed never comes back, from the fallback or elsewhere.
      expect(yield* cache.get("gone")).toEqual(Option.none())
      yield* redis.down({ reconnecting: false })
      expect(yield* cache.get("gone")).toEqual(Option.none())
      yield* redis.up
      // The same race when Redis takes the delete: a later outage must not serve the mirrored copy.
      const second = yield* Effect.fork(cache.delete("kept"))
      yield* settle
      expect(yield* cache.get("kept")).toEqual(Option.some("old"))
      yield* TestClock.adjust("1100 millis")
      expect(yield* Fiber.join(second)).toBe(true)
      yield* redis.down({ reconnecting: false })
      expect(yield* cache.get("kept")).toEqual(Option.none())
    }).pipe(Effect.provide(scripted())))

  it.effect("a delete during an outage: reads miss, the breaker opens, the reconciliation is the probe and deletes the key", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* cache.set("k", "v1")
      yield* redis.down({ reconnecting: false })
      expect(yield* cache.delete("k")).toBe(true)
      for (let i = 0; i < 5; i++) expect(yield* cache.get("k")).toEqual(Option.none())
      // Reads of the pending key never reach Redis; another key's read does, fails, and opens the breaker.
      yield* cache.get("other")
      const down = yield* cache.stats
      expect(down.circuitState).toBe("OPEN")
      expect(down.reconciliation?.pendingKeys).toBe(1)
      yield* redis.up
      expect(yield* redis.peek("t:k")).toBe("v1")
      // Before halfOpenAfter: nothing is sent.
      yield* TestClock.adjust("900 millis")
      yield* settle
      expect(yield* redis.peek("t:k")).toBe("v1")
      yield* TestClock.adjust("200 millis")
      yield* settle
      expect(yield* redis.peek("t:k")).toBeNull()
      const after = yield* cache.stats
      expect(after.circuitState).toBe("CLOSED")
      expect(after.reconciliation).toMatchObject({ pendingKeys: 0, reconciledKeys: 1 })
      expect(yield* cache.get("k")).toEqual(Option.none())
    }).pipe(Effect.provide(scripted())))

  it.effect("a second outage in the middle of reconciliation: unrepaired keys stay pending and are repaired after", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      const keys = Array.from({ length: 9 }, (_, i) => `k${i}`)
      yield* cache.setMany(keys.map((k) => [k, `old-${k}`] as const))
      yield* redis.down({ reconnecting: false })
      for (const k of keys) yield* cache.set(k, `new-${k}`)
      expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(9)
      yield* redis.up
      // First batch (3 keys) repaired, the second meets the second outage (sent, reply lost), the third waits.
      yield* redis.push("del", ScriptedConnection.ok, ScriptedConnection.replyLost)
      yield* TestClock.adjust("1 second")
      yield* settle
      const mid = yield* cache.stats
      expect(mid.reconciliation?.reconciledKeys).toBe(3)
      expect(mid.reconciliation?.pendingKeys).toBe(6)
      for (const k of keys) expect(yield* cache.get(k)).not.toEqual(Option.some(`old-${k}`))
      yield* TestClock.adjust("100 millis")
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* settle
      expect((yield* cache.stats).reconciliation).toMatchObject({ pendingKeys: 0, reconciledKeys: 9 })
      for (const k of keys) expect(yield* redis.peek(`t:${k}`)).toBeNull()
    }).pipe(Effect.provide(scripted({ reconcile: { batchSize: 3, retryEvery: "100 millis" } }))))

  it.effect("past maxPending: the namespace is flushed by SCAN + DEL, other keys untouched, then Redis is trusted again", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("other", "keep")
      for (let i = 0; i < 30; i++) yield* redis.put(`t:x${i}`, "old")
      yield* redis.down({ reconnecting: false })
      for (let i = 0; i < 8; i++) yield* cache.set(`x${i}`, "new")
      const down = yield* cache.stats
      expect(down.reconciliation).toMatchObject({ overflows: 1, flushing: true })
      // Not even a key never written is read from Redis while the flush is due.
      yield* redis.up
      expect(yield* cache.get("x20")).toEqual(Option.none())
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* settle
      expect((yield* cache.stats).reconciliation).toMatchObject({ flushing: false, pendingKeys: 0 })
      expect(yield* redis.keys).toEqual(["other"])
      expect((yield* commands("scan")).length).toBeGreaterThanOrEqual(1)
    }).pipe(Effect.provide(scripted({ reconcile: { maxPending: 5 } }))))

  it.effect("write-back writes the newest value back with what is left of its TTL; an expired one is deleted", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.down({ reconnecting: false })
      yield* cache.set("k", "v1", { ttl: "10 seconds" })
      yield* cache.set("k", "v2", { ttl: "10 seconds" })
      yield* cache.set("short", "s", { ttl: "500 millis" })
      yield* redis.put("t:short", "old")
      // While Redis is down, the reconciler's rounds are the breaker's probes (one per halfOpenAfter), and fail.
      yield* TestClock.adjust("4 seconds")
      yield* redis.up
      for (let i = 0; i < 12; i++) {
        yield* TestClock.adjust("100 millis")
        yield* settle
      }
      expect(yield* redis.peek("t:k")).toBe("v2")
      const pttl = yield* redis.pttl("t:k")
      // 10 s from the write, 4 to 5.2 s of it spent in the outage and the probe's wait.
      expect(pttl).toBeGreaterThanOrEqual(4_800)
      expect(pttl).toBeLessThanOrEqual(6_000)
      expect(yield* redis.peek("t:short")).toBeNull()
    }).pipe(Effect.provide(scripted({ reconcile: { policy: "write-back", retryEvery: "100 millis" } }))))

  it.effect("a reconciliation refused for good (no permission) backs off instead of hammering Redis", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.setDefault("del", ScriptedConnection.permanent("no_permission"))
      yield* redis.down({ reconnecting: false })
      yield* cache.delete("k")
      yield* redis.up
      for (let i = 0; i < 100; i++) {
        yield* TestClock.adjust("100 millis")
        yield* settle
      }
      // 10 s: doubling from 100 ms up to 5 s is 8 attempts, not 100; the key stays pending.
      const dels = (yield* commands("del")).length
      expect(dels).toBeGreaterThanOrEqual(5)
      expect(dels).toBeLessThanOrEqual(10)
      expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(1)
      expect((yield* cache.stats).circuitState).toBe("CLOSED")
    }).pipe(Effect.provide(scripted())))

  it.effect("without the mirror, an acknowledged write still drops the fallback's older copy", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.push("set", ScriptedConnection.rejected("read_only"))
      yield* cache.set("k", "a")
      yield* TestClock.adjust("100 millis")
      yield* settle
      expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(0)
      yield* cache.set("k", "b")
      yield* redis.down({ reconnecting: false })
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect((yield* cache.stats).memory?.entries).toBe(0)
    }).pipe(Effect.provide(scripted({ mirror: false }))))

  it.effect("fallbackTtl bounds what an outage serves, whatever the value's own TTL", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* cache.set("k", "v", { ttl: "1 minute" })
      yield* redis.down({ reconnecting: false })
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      yield* TestClock.adjust("999 millis")
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      yield* TestClock.adjust("2 millis")
      expect(yield* cache.get("k")).toEqual(Option.none())
    }).pipe(Effect.provide(scripted({ fallbackTtl: "1 second" }))))
})

describe("ResilientCache reconciliation details (scripted connection, TestClock)", () => {
  it.effect("write-back: a newer write that fails while the older one is being written back stays pending and wins", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      // The write fails; the reconciler's write-back of v1 takes 100 ms; v2 fails meanwhile.
      yield* redis.push("set", ScriptedConnection.rejected("read_only"), ScriptedConnection.slow("100 millis"), ScriptedConnection.rejected("read_only"))
      yield* cache.set("k", "v1")
      yield* settle
      expect(yield* redis.inFlight).toBe(1)
      yield* cache.set("k", "v2")
      yield* TestClock.adjust("100 millis")
      yield* settle
      // v1's acknowledgement settles v1's intent only: v2 is written back in the next round.
      expect(yield* redis.peek("t:k")).toBe("v2")
      // One key reconciled: the round that wrote v1 back did not settle v2's intent, the next one did.
      expect((yield* cache.stats).reconciliation).toMatchObject({ pendingKeys: 0, reconciledKeys: 1 })
      expect(yield* cache.get("k")).toEqual(Option.some("v2"))
    }).pipe(Effect.provide(scripted({ reconcile: { policy: "write-back" } }))))

  it.effect("write-back never writes an older value over one Redis acknowledged while its key was pending", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.push("set", ScriptedConnection.rejected("read_only"))
      yield* cache.set("k", "v1")
      // Acknowledged by Redis before the reconciler's round: the key is still pending with the intent "v1".
      yield* cache.set("k", "v2")
      expect(yield* redis.peek("t:k")).toBe("v2")
      yield* settle
      expect(yield* redis.peek("t:k")).toBe("v2")
      expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(0)
      expect(yield* cache.get("k")).toEqual(Option.some("v2"))
    }).pipe(Effect.provide(scripted({ reconcile: { policy: "write-back" } }))))

  it.effect("write-back: an intent whose TTL ends at the round's instant is deleted, not written", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("t:k", "old")
      // The write fails, the first write-back (at 0 ms) fails: the next round is 100 ms later, when the value expires.
      yield* redis.push("set", ScriptedConnection.rejected("read_only"), ScriptedConnection.rejected("read_only"))
      yield* cache.set("k", "v", { ttl: "100 millis" })
      yield* settle
      expect((yield* commands("set")).length).toBe(2)
      yield* TestClock.adjust("100 millis")
      yield* settle
      expect(yield* redis.peek("t:k")).toBeNull()
      expect((yield* commands("set")).length).toBe(2)
      expect((yield* cache.stats).reconciliation).toMatchObject({ pendingKeys: 0, reconciledKeys: 1 })
    }).pipe(Effect.provide(scripted({ reconcile: { policy: "write-back" } }))))

  it.effect("a key written (and missed) after the flush's SCAN passed it is remembered and repaired after the flush", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("t:x0", "old")
      yield* redis.push("mset", ScriptedConnection.rejected("read_only"), ScriptedConnection.rejected("read_only"))
      yield* redis.push("del", ScriptedConnection.slow("100 millis"))
      yield* cache.setMany([["x0", "n"], ["x1", "n"], ["x2", "n"]])
      expect((yield* cache.stats).reconciliation).toMatchObject({ overflows: 1, flushing: true })
      yield* settle
      // The SCAN has run (t:x0 found), its DEL is in flight. Another process writes y, and our newer write misses.
      expect((yield* commands("scan")).length).toBe(1)
      yield* redis.put("t:y", "old")
      yield* cache.setMany([["y", "new"]])
      expect((yield* cache.stats).reconciliation).toMatchObject({ overflows: 1, flushing: true, pendingKeys: 1 })
      yield* TestClock.adjust("100 millis")
      yield* settle
      expect((yield* cache.stats).reconciliation).toMatchObject({ flushing: false, pendingKeys: 0 })
      expect(yield* redis.peek("t:y")).toBeNull()
      expect(yield* cache.get("y")).not.toEqual(Option.some("old"))
    }).pipe(Effect.provide(scripted({ reconcile: { maxPending: 2 } }))))

  it.effect("overflowing again while a flush step is in flight restarts the flush from the start", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("t:x0", "old")
      yield* redis.push("mset", ScriptedConnection.rejected("read_only"), ScriptedConnection.rejected("read_only"))
      yield* redis.push("del", ScriptedConnection.slow("100 millis"))
      yield* cache.setMany([["x0", "n"], ["x1", "n"], ["x2", "n"]])
      yield* settle
      expect((yield* commands("scan")).length).toBe(1)
      // After the SCAN passed: another process writes y0, and three missed writes overflow again.
      yield* redis.put("t:y0", "old")
      yield* cache.setMany([["y0", "new"], ["y1", "new"], ["y2", "new"]])
      expect((yield* cache.stats).reconciliation).toMatchObject({ overflows: 2, flushing: true, pendingKeys: 0 })
      yield* TestClock.adjust("100 millis")
      yield* settle
      // The step of the first flush completed; the second flush scanned again from the start and found y0.
      expect((yield* commands("scan")).length).toBe(2)
      expect((yield* cache.stats).reconciliation).toMatchObject({ flushing: false })
      expect(yield* redis.peek("t:y0")).toBeNull()
      expect(yield* cache.get("y0")).toEqual(Option.none())
    }).pipe(Effect.provide(scripted({ reconcile: { maxPending: 2 } }))))

  it.effect("misses before a flush has sent its first SCAN are not remembered one by one (no second overflow)", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.down({ reconnecting: false })
      // The first failure opens the breaker: no reconciliation round (no SCAN) until it half-opens.
      yield* cache.setMany([["x0", "n"], ["x1", "n"], ["x2", "n"]])
      yield* settle
      yield* cache.setMany([["y0", "n"], ["y1", "n"], ["y2", "n"]])
      yield* cache.delete("z")
      expect((yield* commands("scan")).length).toBe(0)
      expect((yield* cache.stats).reconciliation).toMatchObject({ overflows: 1, flushing: true, pendingKeys: 0 })
      expect(yield* cache.get("y0")).toEqual(Option.some("n"))
    }).pipe(Effect.provide(scripted({ reconcile: { maxPending: 2 }, breaker: { failureThreshold: 1, halfOpenAfter: "1 second" } }))))

  it.effect("local reads are counted per key: a getMany mixing pending and trusted keys counts the pending ones", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("t:b", "b")
      yield* redis.push("del", ScriptedConnection.slow("1 second"))
      yield* redis.push("mset", ScriptedConnection.rejected("read_only"))
      yield* cache.setMany([["p", "1"], ["q", "2"]])
      expect(yield* cache.getMany(["p", "b", "q", "c"])).toEqual([Option.some("1"), Option.some("b"), Option.some("2"), Option.none()])
      expect((yield* cache.stats).reconciliation?.localReads).toBe(2)
      // Redis was asked for the trusted keys only.
      expect((yield* commands("mget")).map((e) => e.keys)).toEqual([["t:b", "t:c"]])
      expect(yield* cache.getMany(["p", "q"])).toEqual([Option.some("1"), Option.some("2")])
      expect(yield* cache.get("p")).toEqual(Option.some("1"))
      const stats = yield* cache.stats
      expect(stats.reconciliation?.localReads).toBe(5)
      expect(stats.fallbacks).toBe(1)
    }).pipe(Effect.provide(scripted())))

  it.effect("while the breaker rejects, reads of pending keys are fallbacks (circuit_open), not local reads", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.down({ reconnecting: false })
      yield* cache.setMany([["p", "1"], ["q", "2"]])
      expect((yield* cache.stats).circuitState).toBe("OPEN")
      expect(yield* cache.getMany(["p", "q"])).toEqual([Option.some("1"), Option.some("2")])
      expect(yield* cache.get("p")).toEqual(Option.some("1"))
      const stats = yield* cache.stats
      expect(stats.reconciliation?.localReads).toBe(0)
      expect(stats.fallbacks).toBe(3)
      // The strict cache's count and this cache's own, added.
      expect(stats.errors["circuit_open"]).toBe(3)
    }).pipe(Effect.provide(scripted({ breaker: { failureThreshold: 1, halfOpenAfter: "1 second" } }))))

  it.effect("the backoff of refused rounds: the doubling stops at 1024 x retryEvery, and a retryEvery above 5 s is kept", () =>
    Effect.gen(function*() {
      const run = (retryEvery: Duration.DurationInput, steps: number, step: Duration.DurationInput) =>
        Effect.gen(function*() {
          const redis = yield* ScriptedConnection.ScriptedConnection
          const cache = yield* Cache
          yield* redis.setDefault("del", ScriptedConnection.permanent("no_permission"))
          yield* cache.delete("k")
          for (let i = 0; i < steps; i++) {
            yield* TestClock.adjust(step)
            yield* settle
          }
          // The user's delete, then the reconciler's.
          return (yield* commands("del")).length - 1
        }).pipe(Effect.provide(scripted({ reconcile: { retryEvery } })))
      // 1 ms: pauses 1, 2, ..., 1024 ms (2047 ms, 11 rounds), then every 1024 ms: 21 or 22 rounds in 12 s.
      const fast = yield* run("1 millis", 120, "100 millis")
      expect(fast).toBeGreaterThanOrEqual(20)
      expect(fast).toBeLessThanOrEqual(23)
      // 10 s: every 10 s (not 5): 7 rounds in 60 s.
      const slow = yield* run("10 seconds", 60, "1 second")
      expect(slow).toBe(7)
    }))
})

describe("ResilientCache reconciliation: bounds, wake-ups and metrics (scripted connection, TestClock)", () => {
  const reconciledBy = (action: string) =>
    Effect.map(Metric.value(Metric.taggedWithLabels(CacheMetrics.reconciled, [MetricLabel.make("action", action)])), (s) => s.count)

  it.effect("a key missed again while pending is one entry (the newest intent), not one more towards maxPending", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.down({ reconnecting: false })
      yield* cache.set("a", "1")
      yield* cache.set("b", "1")
      yield* cache.set("a", "2")
      yield* cache.delete("b")
      expect((yield* cache.stats).reconciliation).toMatchObject({ pendingKeys: 2, overflows: 0, flushing: false })
      expect(yield* cache.get("a")).toEqual(Option.some("2"))
    }).pipe(Effect.provide(scripted({ reconcile: { maxPending: 2 } }))))

  it.effect("a flush that overflows again after its first page starts over from the first key", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      // 1,001 keys: the flush takes two SCAN pages of 1,000.
      for (let i = 0; i <= 1000; i++) yield* redis.put(`t:a${String(i).padStart(4, "0")}`, "old")
      yield* redis.push("mset", ScriptedConnection.rejected("read_only"), ScriptedConnection.rejected("read_only"))
      // The first page is scanned and deleted at once; the second page's SCAN takes 100 ms.
      yield* redis.push("scan", ScriptedConnection.ok, ScriptedConnection.slow("100 millis"))
      yield* cache.setMany([["x0", "n"], ["x1", "n"], ["x2", "n"]])
      yield* settle
      expect((yield* commands("scan")).length).toBe(2)
      // Past the first page: another process writes a0000 again, then our newer writes miss and overflow again.
      yield* redis.put("t:a0000", "old")
      yield* cache.setMany([["a0000", "new"], ["y1", "new"], ["y2", "new"]])
      expect((yield* cache.stats).reconciliation).toMatchObject({ overflows: 2, flushing: true })
      yield* TestClock.adjust("100 millis")
      yield* settle
      expect((yield* cache.stats).reconciliation).toMatchObject({ flushing: false, pendingKeys: 0 })
      expect(yield* redis.peek("t:a0000")).toBeNull()
      expect(yield* cache.get("a0000")).toEqual(Option.none())
    }).pipe(Effect.provide(scripted({ reconcile: { maxPending: 2 } }))))

  it.effect("when another caller's probe closes the breaker, reconciliation runs at once, not at its next retry", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("t:k", "old")
      yield* redis.down({ reconnecting: false })
      yield* cache.delete("k")
      expect((yield* cache.stats).circuitState).toBe("OPEN")
      yield* redis.up
      yield* TestClock.adjust("1 second")
      // The reconciler waits up to retryEvery (10 s); this read is the probe and closes the breaker.
      expect(yield* cache.get("other")).toEqual(Option.none())
      yield* settle
      expect((yield* cache.stats).circuitState).toBe("CLOSED")
      expect(yield* redis.peek("t:k")).toBeNull()
      expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(0)
    }).pipe(Effect.provide(scripted({ reconcile: { retryEvery: "10 seconds" }, breaker: { failureThreshold: 1, halfOpenAfter: "1 second" } }))))

  it.effect("metrics: keys reconciled by action, local reads, the pending-keys gauge", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      const deletes = yield* reconciledBy("delete")
      const flushes = yield* reconciledBy("flush")
      const localBefore = (yield* Metric.value(CacheMetrics.pendingReads)).count
      yield* redis.put("t:z", "old")
      yield* redis.push("mset", ScriptedConnection.rejected("read_only"), ScriptedConnection.rejected("read_only"))
      yield* redis.push("del", ScriptedConnection.slow("1 second"))
      yield* cache.setMany([["a", "1"], ["b", "2"]])
      yield* settle
      expect((yield* Metric.value(CacheMetrics.pendingKeys)).value).toBe(2)
      // Pending and trusted keys: Redis is read for c only.
      expect(yield* cache.getMany(["a", "b", "c"])).toEqual([Option.some("1"), Option.some("2"), Option.none()])
      yield* TestClock.adjust("1 second")
      yield* settle
      expect((yield* cache.stats).reconciliation).toMatchObject({ pendingKeys: 0, localReads: 2 })
      expect((yield* Metric.value(CacheMetrics.pendingReads)).count - localBefore).toBe(2)
      expect((yield* reconciledBy("delete")) - deletes).toBe(2)
      expect((yield* Metric.value(CacheMetrics.pendingKeys)).value).toBe(0)
      // An overflow: the flush counts the keys it deleted.
      yield* cache.setMany([["x", "new"], ["y", "new"], ["z", "new"]])
      yield* settle
      expect((yield* cache.stats).reconciliation).toMatchObject({ flushing: false, overflows: 1 })
      expect(yield* redis.peek("t:z")).toBeNull()
      expect((yield* reconciledBy("flush")) - flushes).toBe(1)
    }).pipe(Effect.provide(scripted({ reconcile: { maxPending: 2 } }))))

  it.effect("metrics: keys written back are counted as write_back", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      const before = yield* reconciledBy("write_back")
      yield* redis.push("mset", ScriptedConnection.rejected("read_only"))
      yield* cache.setMany([["a", "1"], ["b", "2"]])
      yield* settle
      expect([yield* redis.peek("t:a"), yield* redis.peek("t:b")]).toEqual(["1", "2"])
      expect((yield* reconciledBy("write_back")) - before).toBe(2)
    }).pipe(Effect.provide(scripted({ reconcile: { policy: "write-back", batchSize: 1 } }))))

  it.effect("with the mirror, a value read from Redis is there for the next outage; without it, it is not", () =>
    Effect.gen(function*() {
      const run = (mirror: boolean) =>
        Effect.gen(function*() {
          const redis = yield* ScriptedConnection.ScriptedConnection
          const cache = yield* Cache
          yield* redis.put("t:k", "v")
          expect(yield* cache.get("k")).toEqual(Option.some("v"))
          yield* redis.down({ reconnecting: false })
          const during = yield* cache.get("k")
          // Hits: one from Redis, one from the fallback when mirrored.
          return [during, (yield* cache.stats).hits] as const
        }).pipe(Effect.provide(scripted({ mirror })))
      expect(yield* run(true)).toEqual([Option.some("v"), 2])
      expect(yield* run(false)).toEqual([Option.none(), 1])
    }))
})

describe("FallbackStore (MemoryCache.layerFallback)", () => {
  it.effect("a Redis answer that left before a newer write or delete never overwrites it", () =>
    Effect.gen(function*() {
      const store = yield* MemoryCache.makeFallback({ maxEntries: 3 })
      const since = store.version()
      store.write("a", "new")
      store.mirror("a", "old", since)
      expect(store.get("a")).toBe("new")
      store.write("b", "x")
      const beforeDelete = store.version()
      store.remove("b")
      store.mirror("b", "x", beforeDelete)
      expect(store.get("b")).toBeUndefined()
      // A read that started after both may mirror.
      const later = store.version()
      store.mirror("a", "fresh", later)
      store.mirror("b", "y", later)
      expect([store.get("a"), store.get("b")]).toEqual(["fresh", "y"])
      // A miss in Redis drops the copy.
      store.mirror("a", undefined, store.version())
      expect(store.get("a")).toBeUndefined()
    }))

  it.effect("an evicted newer write is not resurrected by an older answer", () =>
    Effect.gen(function*() {
      const store = yield* MemoryCache.makeFallback({ maxEntries: 2 })
      const since = store.version()
      store.write("k", "new")
      store.write("x", "1")
      store.write("y", "2") // evicts k (the oldest, never read)
      expect(store.get("k")).toBeUndefined()
      store.mirror("k", "old", since)
      expect(store.get("k")).toBeUndefined()
      expect(store.size()).toBe(2)
    }))

  it.effect("a newer write that expired (the store's ttl is shorter than Redis') is not replaced by an older answer", () =>
    Effect.gen(function*() {
      const store = yield* MemoryCache.makeFallback({ ttl: "1 second" })
      const since = store.version()
      store.write("k", "new")
      yield* TestClock.adjust("1 second")
      expect(store.get("k")).toBeUndefined()
      // The read that started before the write answers now: Redis may still hold "new", the answer is older.
      store.mirror("k", "old", since)
      expect(store.get("k")).toBeUndefined()
    }))

  it.effect("an entry older than the last delete, expiring, does not lower the bar for mirrors", () =>
    Effect.gen(function*() {
      const store = yield* MemoryCache.makeFallback({ ttl: "1 second" })
      store.write("a", "1", Duration.millis(100))
      const since = store.version()
      store.write("b", "new")
      store.remove("b")
      yield* TestClock.adjust("100 millis")
      expect(store.get("a")).toBeUndefined()
      store.mirror("b", "old", since)
      expect(store.get("b")).toBeUndefined()
    }))

  it.effect("clear() forgets every value, and no read that started before it mirrors one back", () =>
    Effect.gen(function*() {
      const store = yield* MemoryCache.makeFallback({ maxEntries: 3 })
      const since = store.version()
      store.write("a", "new")
      store.write("b", "new")
      store.clear()
      expect(store.size()).toBe(0)
      store.mirror("a", "old", since)
      expect(store.get("a")).toBeUndefined()
      const after = store.version()
      store.mirror("a", "fresh", after)
      expect(store.get("a")).toBe("fresh")
    }))

  it.effect("a mirrored entry counts as used by eviction (refreshed in place), starts unreferenced when new, and is admitted one read in 8 when full", () =>
    Effect.gen(function*() {
      const store = yield* MemoryCache.makeFallback({ maxEntries: 3 })
      store.write("a", "1")
      store.write("b", "2")
      store.write("c", "3")
      store.mirror("a", "1'", store.version())
      store.write("d", "4") // a passed over, b goes
      expect(["a", "b", "c", "d"].map((k) => store.get(k))).toEqual(["1'", undefined, "3", "4"])
      const small = yield* MemoryCache.makeFallback({ maxEntries: 9 })
      for (let i = 0; i < 9; i++) small.mirror(`k${i}`, "v", small.version())
      // Full: of the reads of keys it does not hold, only one in ADMIT_EVERY (8) is kept. The first 7 are not...
      for (let i = 9; i < 16; i++) small.mirror(`k${i}`, "v", small.version())
      expect(small.size()).toBe(9)
      for (let i = 9; i < 16; i++) expect(small.get(`k${i}`)).toBeUndefined()
      // ... the 8th is, and the oldest entry (never read) goes, first in, first out.
      small.mirror("k16", "v", small.version())
      expect(small.get("k16")).toBe("v")
      expect(small.get("k0")).toBeUndefined()
      expect(small.get("k1")).toBe("v")
      expect(small.size()).toBe(9)
      // A key it holds is always refreshed, and a local write always kept, full or not.
      small.mirror("k1", "v2", small.version())
      expect(small.get("k1")).toBe("v2")
      small.write("w", "x")
      expect(small.get("w")).toBe("x")
    }))

  it.effect("a write's TTL is capped by the store's ttl; bad options are defects", () =>
    Effect.gen(function*() {
      const store = yield* MemoryCache.makeFallback({ ttl: "1 second" })
      store.write("short", "v", Duration.millis(300))
      store.write("long", "v", Duration.minutes(5))
      yield* TestClock.adjust("301 millis")
      expect(store.get("short")).toBeUndefined()
      expect(store.get("long")).toBe("v")
      yield* TestClock.adjust("700 millis")
      expect(store.get("long")).toBeUndefined()
      const bad = yield* Effect.exit(MemoryCache.makeFallback({ ttl: "0 millis" }))
      expect(bad._tag).toBe("Failure")
      const badSize = yield* Effect.exit(MemoryCache.makeFallback({ maxEntries: 0 }))
      expect(badSize._tag).toBe("Failure")
      expect(String(bad._tag === "Failure" ? Cause.squash(bad.cause) : "")).toContain("MemoryCache fallback ttl must be a positive")
      expect(String(badSize._tag === "Failure" ? Cause.squash(badSize.cause) : "")).toContain("maxEntries must be an integer >= 1")
    }))
})

describe("ResilientCache stats", () => {
  it.effect("stats name the backend and the fallback's and reconciliation's configuration", () =>
    Effect.gen(function*() {
      const cache = yield* Cache
      yield* cache.set("k", "v")
      const stats = yield* cache.stats
      expect(stats.backend).toBe("resilient")
      expect(stats.memory).toEqual({ entries: 1, maxEntries: 5 })
      expect(stats.reconciliation).toEqual({
        policy: "write-back",
        pendingKeys: 0,
        maxPending: 7,
        reconciledKeys: 0,
        overflows: 0,
        flushing: false,
        localReads: 0
      })
      expect(stats.config).toMatchObject({
        fallbackTtlMs: 3000,
        mirror: true,
        memoryMaxEntries: 5,
        reconcilePolicy: "write-back",
        reconcileMaxPending: 7
      })
    }).pipe(Effect.provide(scripted({ memory: { maxEntries: 5 }, fallbackTtl: "3 seconds", reconcile: { policy: "write-back", maxPending: 7 } }))))
})

describe("ResilientCache options", () => {
  it.effect("invalid reconcile options are defects that name the option", () =>
    Effect.gen(function*() {
      for (const [reconcile, named] of [
        [{ maxPending: 0 }, "reconcile.maxPending"],
        [{ batchSize: 1.5 }, "reconcile.batchSize"],
        [{ policy: "eventually" as "invalidate" }, "reconcile.policy"]
      ] as const) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(scripted({ reconcile }))))
        expect(exit._tag).toBe("Failure")
        expect(String(exit._tag === "Failure" ? Cause.squash(exit.cause) : "")).toContain(named)
      }
    }))
})
