import { describe, expect, it } from "@effect/vitest"
import { SpanCapture } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as RedisConnection from "../src/RedisConnection.js"

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

/** A tracer that records the spans it is asked for (what an OpenTelemetry exporter would receive). */
const recordingTracer = () => SpanCapture.make()

describe("RedisConnection spans", () => {
  it.live("with a tracer installed, every command is a client span with semantic-convention attributes", () => {
    const { spans, tracer } = recordingTracer()
    const layer = RedisConnection.layer({ url: REDIS_URL }).pipe(Layer.provide(Layer.setTracer(tracer)))
    return Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      yield* redis.get("steadfast:test:tracing")
      yield* redis.getBatched("steadfast:test:tracing")
      yield* redis.set("steadfast:test:tracing", "v", Option.none())
      yield* redis.del(["steadfast:test:tracing"])
      const names = spans.map((s) => s.name)
      expect(names).toEqual(["redis.get", "redis.get", "redis.set", "redis.del"])
      for (const span of spans) {
        expect(span.kind).toBe("client")
        expect(span.attributes.get("db.system.name")).toBe("redis")
        expect(span.attributes.get("server.address")).toBe("127.0.0.1")
        expect(span.attributes.get("server.port")).toBe(6379)
      }
      expect(spans.map((s) => s.attributes.get("db.operation.name"))).toEqual(["GET", "MGET", "SET", "DEL"])
    }).pipe(Effect.provide(layer), Effect.withTracer(tracer))
  })

  it.live("the tracer is the caller's, read per call: installed after the layer was built, it sees the spans", () => {
    const { spans, tracer } = recordingTracer()
    const key = `steadfast:test:tracing:late:${process.pid}`
    return Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      // Built under Effect's built-in tracer (whose spans nothing can read: none are made for it).
      yield* redis.get(key)
      expect(spans).toEqual([])
      yield* redis.set(key, "v", Option.none()).pipe(Effect.withTracer(tracer))
      yield* redis.getBatched(key).pipe(Effect.withTracer(tracer))
      expect(spans.map((s) => s.name)).toEqual(["redis.set", "redis.get"])
      // Each span ended once, when its call settled, with the call's outcome.
      expect(spans.map((s) => s.ends.length)).toEqual([1, 1])
      expect(Exit.isSuccess(spans[1]!.ends[0]!.exit) && spans[1]!.ends[0]!.exit.value).toBe("v")
      // Turned off the Effect way: no span.
      yield* redis.get(key).pipe(Effect.withTracerEnabled(false), Effect.withTracer(tracer))
      expect(spans.length).toBe(2)
      // A failed command's span ends with its typed failure.
      const failed = yield* redis.execute("hget", (c) => c.hget(key, "field")).pipe(Effect.withTracer(tracer), Effect.flip)
      expect(failed._tag).toBe("PermanentError")
      const last = spans[spans.length - 1]!
      expect(last.name).toBe("redis.hget")
      expect(last.attributes.get("db.operation.name")).toBe("HGET")
      expect(Exit.isFailure(last.ends[0]!.exit)).toBe(true)
      yield* redis.del([key])
    }).pipe(Effect.provide(RedisConnection.layer({ url: REDIS_URL })))
  })

  it.live("coalesced calls: each traced caller's span ends once with its own outcome, at the reply's instant", () => {
    const { spans, tracer } = recordingTracer()
    const key = (i: number) => `steadfast:test:tracing:batch:${process.pid}:${i}`
    return Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      yield* redis.set(key(1), "one", Option.none())
      yield* redis.set(key(3), "three", Option.none())
      // A tick of 16 reads first: a tick's early part (sent when nothing is in flight) is then a quarter of it, 4.
      yield* Effect.all(Array.from({ length: 16 }, (_, i) => redis.getBatched(key(100 + i))), { concurrency: "unbounded" })
      // Four reads in one tick (one MGET, sent with the fourth): the second with tracing off, the others traced.
      const values = yield* Effect.all([
        redis.getBatched(key(1)).pipe(Effect.withTracer(tracer)),
        redis.getBatched(key(2)).pipe(Effect.withTracerEnabled(false), Effect.withTracer(tracer)),
        redis.getBatched(key(3)).pipe(Effect.withTracer(tracer)),
        redis.getBatched(key(4)).pipe(Effect.withTracer(tracer))
      ], { concurrency: "unbounded" })
      expect(values).toEqual(["one", null, "three", null])
      expect(spans.map((s) => s.attributes.get("db.operation.name"))).toEqual(["MGET", "MGET", "MGET"])
      expect(spans.map((s) => s.ends.map(({ exit }) => Exit.isSuccess(exit) ? exit.value : "failed"))).toEqual([
        ["one"],
        ["three"],
        [null]
      ])
      // One reply, one instant: the clock is read once for the batch's spans.
      expect(new Set(spans.map((s) => s.ends[0]?.time)).size).toBe(1)
      expect(spans[0]!.ends[0]!.time > 0n).toBe(true)
      yield* redis.del([key(1), key(3)])
    }).pipe(Effect.provide(RedisConnection.layer({ url: REDIS_URL })))
  })

  it.live("a coalesced batch that fails ends every traced caller's span with the failure", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      // A closed connection: the batch's send fails for all its callers.
      const failures = yield* Effect.all([
        Effect.flip(redis.getBatched("steadfast:test:tracing:x").pipe(Effect.withTracer(tracer))),
        Effect.flip(redis.getBatched("steadfast:test:tracing:y").pipe(Effect.withTracer(tracer)))
      ], { concurrency: "unbounded" })
      expect(failures.map((f) => f.operation)).toEqual(["get", "get"])
      expect(spans.map((s) => s.ends.length)).toEqual([1, 1])
      expect(spans.every((s) => Exit.isFailure(s.ends[0]!.exit))).toBe(true)
    }).pipe(Effect.provide(RedisConnection.layer({ url: "redis://127.0.0.1:1", connectTimeout: "200 millis" })))
  })
})
