import { describe, expect, it } from "@effect/vitest"
import { Cache, ResilientCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import { Retry } from "@steadfast/resilience"
import { RedisServer } from "@steadfast/testing"
import { SpanKind } from "@opentelemetry/api"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Tracing from "../src/Tracing.js"

const fast = Retry.make({ maxRetries: 1, baseDelay: "5 millis", jitter: false })

const named = (exporter: InMemorySpanExporter | ReadonlyArray<ReadableSpan>, name: string) =>
  ("getFinishedSpans" in exporter ? exporter.getFinishedSpans() : exporter).filter((s) => s.name === name)
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId
const fallbackEvents = (span: ReadableSpan) => span.events.filter((e) => e.name === "cache.fallback")

describe("Tracing.layer", () => {
  it.live("a resilient cache's get and set are redis.get / redis.set client spans with their attributes", () =>
    Effect.gen(function*() {
      const exporter = new InMemorySpanExporter()
      const keyPrefix = `steadfast:otel-tracing:${process.pid}:${Date.now()}:`
      let spans: ReadonlyArray<ReadableSpan> = []
      const live = ResilientCache.layer({ keyPrefix }).pipe(
        Layer.provide(RedisConnection.layer({ url: "redis://127.0.0.1:6379" })),
        Layer.provide(Tracing.layer({ spanProcessor: new SimpleSpanProcessor(exporter), serviceName: "tracing-test" }))
      )
      yield* Effect.gen(function*() {
        const cache = yield* Cache.Cache
        yield* cache.set("a", "1").pipe(Effect.withSpan("request.set"))
        expect(yield* cache.get("a").pipe(Effect.withSpan("request.get"))).toEqual(Option.some("1"))
        yield* cache.delete("a")
        // Read before the layer closes: shutting the provider down shuts the exporter down, which forgets its spans.
        spans = exporter.getFinishedSpans()
      }).pipe(Effect.provide(live))

      const [request] = named(spans, "request.get")
      const [get] = named(spans, "redis.get")
      const [set] = named(spans, "redis.set")
      expect(get, "redis.get").toBeDefined()
      expect(set, "redis.set").toBeDefined()
      for (const [span, operation] of [[get!, "MGET"], [set!, "MSET"]] as const) {
        expect(span.kind).toBe(SpanKind.CLIENT)
        expect(span.attributes).toMatchObject({
          "db.system.name": "redis",
          "db.operation.name": operation,
          "db.namespace": "0",
          "server.address": "127.0.0.1",
          "server.port": 6379
        })
        expect(span.resource.attributes["service.name"]).toBe("tracing-test")
        // A healthy call is no fallback.
        expect(fallbackEvents(span)).toEqual([])
      }
      // The Redis span is a child of the caller's span, in the same trace.
      expect(parentOf(get!)).toBe(request!.spanContext().spanId)
      expect(get!.spanContext().traceId).toBe(request!.spanContext().traceId)
      expect(fallbackEvents(request!)).toEqual([])
      expect(named(spans, "redis.del").length).toBe(1)
    }))

  it.live("fallbacks are cache.fallback events (Redis failed, breaker rejected), a repair is a cache.reconcile span", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const exporter = new InMemorySpanExporter()
      const live = ResilientCache.layer({
        keyPrefix: "otel-tracing:",
        retry: { get: fast, getMany: fast, set: fast, delete: fast },
        breaker: { failureThreshold: 2, halfOpenAfter: "1 second" },
        reconcile: { retryEvery: "50 millis" }
      }).pipe(
        Layer.provide(RedisConnection.layer({ url: server.url, commandTimeout: "300 millis", connectTimeout: "300 millis" })),
        Layer.provide(Tracing.layer({ spanProcessor: new SimpleSpanProcessor(exporter) }))
      )
      yield* Effect.gen(function*() {
        const cache = yield* Cache.Cache
        yield* cache.set("k", "before")
        yield* server.stop

        // Redis fails: the read is answered from memory, and the caller's span says so.
        expect(yield* cache.get("k").pipe(Effect.withSpan("request.down"))).toEqual(Option.some("before"))
        const [down] = named(exporter, "request.down")
        const [failed] = fallbackEvents(down!)
        expect(failed?.attributes).toMatchObject({ "cache.operation": "get" })
        expect(failed?.attributes?.["cache.fallback.reason"]).toMatch(/^[a-z_]+$/)
        expect(failed?.attributes?.["cache.fallback.reason"]).not.toBe("circuit_open")
        // The failed Redis call is its own span under the request, with an error status.
        // (The failed call itself may have no Redis span: with the server gone, it fails waiting for a socket to be
        // ready, before any command is sent. The event on the caller's span is what shows the fallback and why.)

        // More failures open the breaker: a rejected call is a fallback with reason circuit_open, and makes no Redis span.
        yield* cache.get("k").pipe(Effect.repeatN(3))
        const redisSpans = exporter.getFinishedSpans().filter((s) => s.name.startsWith("redis.")).length
        yield* cache.set("k", "during").pipe(Effect.withSpan("request.rejected"))
        const [rejected] = named(exporter, "request.rejected")
        expect(fallbackEvents(rejected!).map((e) => e.attributes)).toEqual([{
          "cache.operation": "set",
          "cache.fallback.reason": "circuit_open",
          "circuit_breaker.state": "OPEN"
        }])
        expect(exporter.getFinishedSpans().filter((s) => s.name.startsWith("redis.")).length).toBe(redisSpans)

        // Without a span of the caller's, a fallback is a cache.fallback span of its own.
        const orphansBefore = named(exporter, "cache.fallback").length
        expect(yield* cache.get("k")).toEqual(Option.some("during"))
        const orphans = named(exporter, "cache.fallback").slice(orphansBefore)
        expect(orphans.map((s) => s.attributes)).toEqual([{
          "cache.operation": "get",
          "cache.fallback.reason": "circuit_open",
          "circuit_breaker.state": "OPEN"
        }])
        expect(parentOf(orphans[0]!)).toBeUndefined()
        // ... unless tracing is turned off the Effect way.
        yield* cache.get("k").pipe(Effect.withTracerEnabled(false))
        expect(named(exporter, "cache.fallback").length).toBe(orphansBefore + 1)

        // Redis returns: the pending key ("during" was not written) is repaired in a cache.reconcile span.
        yield* server.start
        const reconciled = yield* Effect.suspend(() => {
          const done = named(exporter, "cache.reconcile").find((s) =>
            s.attributes["cache.reconcile.ok"] === true && Number(s.attributes["cache.reconcile.keys_repaired"]) >= 1
          )
          return done === undefined ? Effect.fail("not yet" as const) : Effect.succeed(done)
        }).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds"))))
        expect(reconciled.attributes).toMatchObject({
          "cache.reconcile.policy": "invalidate",
          "cache.reconcile.mode": "keys",
          "cache.reconcile.keys_repaired": 1,
          "cache.reconcile.keys_flushed": 0,
          "cache.reconcile.pending_keys": 0
        })
        // A root span (the reconciler outlives any request), with the repair's Redis call (DEL) under it.
        expect(parentOf(reconciled)).toBeUndefined()
        const del = named(exporter, "redis.del").find((s) => parentOf(s) === reconciled.spanContext().spanId)
        expect(del?.attributes).toMatchObject({ "db.system.name": "redis", "db.operation.name": "DEL" })
        // Invalidated: the next read goes to Redis again, which no longer has the value the write replaced.
        expect(yield* cache.get("k")).toEqual(Option.none())
      }).pipe(Effect.provide(live))
    }).pipe(Effect.scoped), 30_000)

  it.live("a tracer installed after the layer was built sees the Redis spans; withTracerEnabled(false) turns them off", () =>
    Effect.gen(function*() {
      const exporter = new InMemorySpanExporter()
      const keyPrefix = `steadfast:otel-tracing:late:${process.pid}:`
      // Built with Effect's built-in tracer: the tracer is read per call, on the caller's fiber.
      const live = ResilientCache.layer({ keyPrefix }).pipe(Layer.provide(RedisConnection.layer({ url: "redis://127.0.0.1:6379" })))
      let traced: ReadonlyArray<ReadableSpan> = []
      let untraced: ReadonlyArray<ReadableSpan> = []
      yield* Effect.gen(function*() {
        const cache = yield* Cache.Cache
        yield* Effect.gen(function*() {
          yield* Effect.gen(function*() {
            yield* cache.set("a", "1")
            yield* cache.get("a")
            yield* cache.delete("a")
          }).pipe(Effect.withSpan("request"), Effect.annotateSpans("tenant", "t-1"))
          traced = exporter.getFinishedSpans()
          exporter.reset()
          yield* Effect.gen(function*() {
            yield* cache.set("b", "1")
            yield* cache.get("b")
            yield* cache.delete("b")
          }).pipe(Effect.withSpan("quiet"), Effect.withTracerEnabled(false))
          untraced = exporter.getFinishedSpans()
        }).pipe(Effect.provide(Tracing.layer({ spanProcessor: new SimpleSpanProcessor(exporter) })))
      }).pipe(Effect.provide(live))
      const [request] = named(traced, "request")
      expect(traced.map((s) => s.name).sort()).toEqual(["redis.del", "redis.get", "redis.set", "request"])
      for (const name of ["redis.set", "redis.get", "redis.del"]) {
        const [span] = named(traced, name)
        expect(parentOf(span!), name).toBe(request!.spanContext().spanId)
        // Annotations set the Effect way reach every span made under them, as with Effect.withSpan.
        expect(span!.attributes["tenant"], name).toBe("t-1")
        expect(span!.kind).toBe(SpanKind.CLIENT)
      }
      // Tracing off the Effect way: no span at all, ours included.
      expect(untraced).toEqual([])
    }))
})
