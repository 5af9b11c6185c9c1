/**
 * What a tracer sees of the resilient cache (issue 10: fallbacks, breaker rejections and reconciliation are visible in
 * traces), under `TestClock` over a scripted connection, with `SpanCapture` as the tracer: a fallback is a
 * `cache.fallback` event on the caller's span naming the operation, the reason and the state of the breaker that
 * operation goes through (reads or writes); without a span around the call it is a span of its own; each
 * reconciliation round is a root `cache.reconcile` span saying what it did.
 */
import { describe, expect, it } from "@effect/vitest"
import { ScriptedConnection } from "@steadfast/redis"
import { Retry } from "@steadfast/resilience"
import { SpanCapture } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { Cache } from "../src/Cache.js"
import * as ResilientCache from "../src/ResilientCache.js"
import { scriptedResilient, settle } from "./utils.js"

/** No retries at all: each scripted failure is one fallback. */
const scripted = (options: ResilientCache.Options = {}) =>
  scriptedResilient({ retry: { get: Retry.none, getMany: Retry.none, set: Retry.none, delete: Retry.none }, ...options })

/** Runs `program` with the cache layer built under the capture's tracer (the reconciler's spans use it too). */
const traced = <A, E>(
  capture: SpanCapture.SpanCapture,
  options: ResilientCache.Options,
  program: Effect.Effect<A, E, Cache | ScriptedConnection.ScriptedConnection>
) => program.pipe(Effect.provide(scripted(options)), Effect.withTracer(capture.tracer))

/** The span's `cache.fallback` events (Effect also records the log lines written under a span as its events). */
const fallbacksOf = (span: SpanCapture.CapturedSpan | undefined) =>
  (span?.events ?? []).filter((e) => e.name === "cache.fallback").map((e) => e.attributes)

describe("ResilientCache: what a tracer sees", () => {
  it.effect("a fallback is an event on the caller's span: the operation, the reason, the state of its own breaker", () => {
    const capture = SpanCapture.make()
    return traced(
      capture,
      // Reads open after one failure, writes after three: the two breakers' states differ.
      { breakers: { reads: { failureThreshold: 1 }, writes: { failureThreshold: 3 } } },
      Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* Cache
        yield* redis.push("get", ScriptedConnection.rejected("loading"))
        expect(yield* cache.get("a")).toEqual(Option.none())
        // The reads breaker is open now: reads are rejected, answered from memory.
        expect(yield* cache.get("a")).toEqual(Option.none())
        expect(yield* cache.getMany(["a", "b"])).toEqual([Option.none(), Option.none()])
        // A write goes through the writes breaker, still closed: Redis refuses it, memory keeps it.
        yield* redis.push("set", ScriptedConnection.rejected("loading"))
        yield* cache.set("c", "1")
      }).pipe(Effect.withSpan("request"))
    ).pipe(Effect.tap(() => {
      const request = capture.named("request")[0]
      expect(fallbacksOf(request)).toEqual([
        { "cache.operation": "get", "cache.fallback.reason": "loading", "circuit_breaker.state": "OPEN" },
        { "cache.operation": "get", "cache.fallback.reason": "circuit_open", "circuit_breaker.state": "OPEN" },
        { "cache.operation": "getMany", "cache.fallback.reason": "circuit_open", "circuit_breaker.state": "OPEN" },
        { "cache.operation": "set", "cache.fallback.reason": "loading", "circuit_breaker.state": "CLOSED" }
      ])
      // No fallback span of its own while the caller had a span.
      expect(capture.named("cache.fallback")).toEqual([])
    }))
  })

  it.effect("without a span around the call, a fallback is a `cache.fallback` span of its own", () => {
    const capture = SpanCapture.make()
    return traced(
      capture,
      {},
      Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* Cache
        yield* redis.push("del", ScriptedConnection.rejected("loading"))
        yield* cache.delete("k")
      })
    ).pipe(Effect.tap(() => {
      const spans = capture.named("cache.fallback")
      expect(spans).toHaveLength(1)
      expect(Object.fromEntries(spans[0]!.attributes)).toEqual({
        "cache.operation": "delete",
        "cache.fallback.reason": "loading",
        "circuit_breaker.state": "CLOSED"
      })
      expect(spans[0]!.ends).toHaveLength(1)
    }))
  })

  it.effect("each reconciliation round of pending keys is a root `cache.reconcile` span: policy, mode, outcome, its own counts", () => {
    const capture = SpanCapture.make()
    /**
     * Deletes `keys` while Redis refuses them (pending), then lets the reconciler repair them; with `failedRounds`,
     * Redis refuses the reconciler's first attempts too.
     */
    const deleteDuringOutage = (keys: ReadonlyArray<string>, failedRounds = 0) =>
      Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* Cache
        for (const key of keys) yield* redis.put(`t:${key}`, `old-${key}`)
        yield* redis.push("del", ...Array.from({ length: keys.length + failedRounds }, () => ScriptedConnection.rejected("loading")))
        for (const key of keys) yield* cache.delete(key)
        expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(keys.length)
        // The breaker (threshold 3) may open on the way: it half-opens after 1 s.
        for (let i = 0; i < 15; i++) {
          yield* TestClock.adjust("100 millis")
          yield* settle
        }
        for (const key of keys) expect(yield* redis.peek(`t:${key}`)).toBeNull()
      })
    return traced(
      capture,
      {},
      Effect.gen(function*() {
        yield* deleteDuringOutage(["a", "b"], 1)
        yield* deleteDuringOutage(["c"])
      }).pipe(Effect.withSpan("request"))
    ).pipe(
      // The layer (and its reconciler) is built under a span of the application's: rounds are roots all the same.
      Effect.withSpan("app"),
      Effect.tap(() => {
        const rounds = capture.named("cache.reconcile")
        for (const round of rounds) expect(round.parent).toEqual(Option.none())
        const expected = (ok: boolean, repaired: number, pending: number) => ({
          "cache.reconcile.policy": "invalidate",
          "cache.reconcile.mode": "keys",
          "cache.reconcile.ok": ok,
          "cache.reconcile.keys_repaired": repaired,
          "cache.reconcile.keys_flushed": 0,
          "cache.reconcile.pending_keys": pending
        })
        // The refused round, then the two that repaired the keys (no other round had anything to do).
        expect(rounds.map((round) => Object.fromEntries(round.attributes))).toEqual([
          expected(false, 0, 2),
          expected(true, 2, 0),
          expected(true, 1, 0)
        ])
      })
    )
  })

  it.effect("a flush round (more keys pending than maxPending) says how many keys it deleted", () => {
    const capture = SpanCapture.make()
    /** Puts `keys`, then deletes three while Redis refuses them: past maxPending (2), the namespace is flushed. */
    const overflow = (keys: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* Cache
        for (const key of keys) yield* redis.put(`t:${key}`, `old-${key}`)
        yield* redis.push("del", ...Array.from({ length: 3 }, () => ScriptedConnection.rejected("loading")))
        for (const key of keys.slice(0, 3)) yield* cache.delete(key)
        expect((yield* cache.stats).reconciliation?.flushing).toBe(true)
        // Three failures opened the breaker (threshold 3): the flush runs once it half-opens (1 s).
        for (let i = 0; i < 15; i++) {
          yield* TestClock.adjust("100 millis")
          yield* settle
        }
        expect((yield* cache.stats).reconciliation?.flushing).toBe(false)
        expect(yield* redis.keys).toEqual([])
      })
    return traced(
      capture,
      { reconcile: { maxPending: 2, retryEvery: "100 millis", policy: "write-back" } },
      Effect.gen(function*() {
        yield* overflow(["a", "b", "c", "d"])
        yield* overflow(["e", "f", "g"])
      })
    ).pipe(Effect.tap(() => {
      const flushes = capture.named("cache.reconcile").filter((s) => s.attributes.get("cache.reconcile.mode") === "flush")
      expect(flushes.map((s) => Object.fromEntries(s.attributes))).toEqual([4, 3].map((flushed) => ({
        "cache.reconcile.policy": "write-back",
        "cache.reconcile.mode": "flush",
        "cache.reconcile.ok": true,
        "cache.reconcile.keys_repaired": 0,
        "cache.reconcile.keys_flushed": flushed,
        "cache.reconcile.pending_keys": 0
      })))
    }))
  })
})
