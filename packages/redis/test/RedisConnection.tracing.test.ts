import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import * as RedisConnection from "../src/RedisConnection.js"

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

/** A tracer that records the spans it is asked for (what an OpenTelemetry exporter would receive). */
const recordingTracer = () => {
  const spans: Array<{ name: string; kind: string; attributes: Map<string, unknown> }> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      spans.push({ name, kind, attributes })
      return {
        _tag: "Span",
        name,
        spanId: String(spans.length),
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end: () => {},
        attribute: (key, value) => void attributes.set(key, value),
        event: () => {},
        addLinks: () => {}
      }
    },
    context: (f) => f()
  })
  return { spans, tracer }
}

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

  it.live("with Effect's default tracer, no span is made (nobody would read it; it costs ~2.5x a round trip)", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      // The tracer arrives after the layer was built with the default one: the layer decided not to trace.
      yield* redis.get("steadfast:test:tracing").pipe(Effect.withTracer(tracer))
      expect(spans).toEqual([])
    }).pipe(Effect.provide(RedisConnection.layer({ url: REDIS_URL })))
  })
})
