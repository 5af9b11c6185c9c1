/**
 * `Spans` on its own (no Redis): which tracer makes the spans, their parent (the current span, skipping spans that
 * disable propagation), annotations and links, timing from the fiber's clock (or none when timing is off), ending
 * once, events on the current span or as a span of their own, and `ender`'s one clock reading for spans that end
 * together. What a tracer installed by a user (an OpenTelemetry exporter) would receive.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import { SpanCapture } from "@steadfast/testing"
import * as Spans from "../src/Spans.js"

/** A tracer that records what it is given, as an exporter would. */
const recordingTracer = () => SpanCapture.make()

const attributes = { "db.system.name": "redis", "db.operation.name": "GET" }

/** A clock that counts its readings of the time in nanoseconds (and answers a fixed, increasing time). */
const countingClock = () => {
  let readings = 0
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => 1_000,
    unsafeCurrentTimeNanos: () => BigInt(1_000_000_000 + ++readings),
    currentTimeMillis: Effect.sync(() => 1_000),
    currentTimeNanos: Effect.sync(() => BigInt(1_000_000_000 + ++readings)),
    scheduler: Effect.succeed({ unsafeSchedule: () => () => false } as Clock.ClockScheduler),
    sleep: () => Effect.never
  } as Clock.Clock
  return { clock, readings: () => readings }
}

describe("Spans: when a span is made", () => {
  it("outside any fiber: none, and events are ignored", () => {
    expect(Spans.enabled()).toBe(false)
    expect(Spans.start("redis.get", "client", attributes)).toBeUndefined()
    let asked = false
    Spans.event("cache.fallback", () => ((asked = true), {}))
    expect(asked).toBe(false)
  })

  it.effect("under Effect's built-in tracer: none (nothing could read it), and the attributes are not even built", () =>
    Effect.sync(() => {
      expect(Spans.enabled()).toBe(false)
      expect(Spans.start("redis.get", "client", attributes)).toBeUndefined()
      let asked = false
      Spans.event("cache.fallback", () => ((asked = true), {}))
      expect(asked).toBe(false)
    }))

  it.effect("with a tracer installed: a span on it; with tracing turned off the Effect way: none", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const on = yield* Effect.sync(() => [Spans.enabled(), Spans.start("redis.get", "client", attributes)] as const)
        .pipe(Effect.withTracer(tracer))
      expect(on[0]).toBe(true)
      expect(on[1]?.span).toBe(spans[0]!.span)
      expect(spans.map((s) => [s.name, s.kind])).toEqual([["redis.get", "client"]])
      expect(Object.fromEntries(spans[0]!.attributes)).toEqual(attributes)
      const off = yield* Effect.sync(() => [Spans.enabled(), Spans.start("redis.get", "client", attributes)] as const)
        .pipe(Effect.withTracerEnabled(false), Effect.withTracer(tracer))
      expect(off).toEqual([false, undefined])
      expect(spans.length).toBe(1)
    })
  })
})

describe("Spans: parent, annotations and links", () => {
  it.effect("the parent is the current span; a span that disables propagation is skipped for its own parent", () => {
    const { spans, tracer } = recordingTracer()
    const start = Effect.sync(() => Spans.start("redis.get", "client", attributes))
    return Effect.gen(function*() {
      yield* start.pipe(Effect.withSpan("request"))
      yield* start.pipe(
        Effect.withSpan("hidden", { context: Tracer.DisablePropagation.context(true) }),
        Effect.withSpan("outer")
      )
      yield* start.pipe(Effect.withSpan("alone", { root: true, context: Tracer.DisablePropagation.context(true) }))
      yield* start
      const byName = (name: string) => spans.filter((s) => s.name === name)
      const ours = byName("redis.get")
      expect(ours.length).toBe(4)
      expect(Option.map(ours[0]!.parent, (p) => p.spanId)).toEqual(Option.some(byName("request")[0]!.span.spanId))
      expect(Option.map(ours[1]!.parent, (p) => p.spanId)).toEqual(Option.some(byName("outer")[0]!.span.spanId))
      expect(ours[2]!.parent).toEqual(Option.none())
      expect(ours[3]!.parent).toEqual(Option.none())
    }).pipe(Effect.withTracer(tracer))
  })

  it.effect("annotations set with annotateSpans become attributes, links set with linkSpans are passed", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const linked = yield* Effect.makeSpan("elsewhere")
      yield* Effect.sync(() => Spans.start("redis.get", "client", attributes)).pipe(
        Effect.annotateSpans("tenant", "t-1"),
        Effect.linkSpans(linked, { why: "batch" })
      )
      const ours = spans.find((s) => s.name === "redis.get")!
      expect(Object.fromEntries(ours.attributes)).toEqual({ tenant: "t-1", ...attributes })
      expect(ours.links.map((l) => [l.span.spanId, l.attributes])).toEqual([[linked.spanId, { why: "batch" }]])
      // Nothing annotated, nothing linked: only the call's own attributes.
      yield* Effect.sync(() => Spans.start("redis.set", "client", { "db.operation.name": "SET" }))
      const plain = spans.find((s) => s.name === "redis.set")!
      expect(Object.fromEntries(plain.attributes)).toEqual({ "db.operation.name": "SET" })
      expect(plain.links).toEqual([])
    }).pipe(Effect.withTracer(tracer))
  })
})

describe("Spans: timing and ending", () => {
  it.effect("start and end times come from the fiber's clock; a span ends once, with the outcome it was given", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      yield* TestClock.adjust(Duration.millis(5))
      const started = yield* Effect.sync(() => Spans.start("redis.get", "client", attributes))
      yield* TestClock.adjust(Duration.millis(7))
      const failure = Exit.fail("boom")
      yield* Effect.sync(() => {
        Spans.end(started!, failure)
        Spans.end(started!, Exit.succeed("later"))
      })
      expect(spans[0]!.startTime).toBe(5_000_000n)
      expect(spans[0]!.ends).toEqual([{ time: 12_000_000n, exit: failure }])
    }).pipe(Effect.withTracer(tracer))
  })

  it.effect("with tracer timing off, no clock is read: times are 0", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      yield* TestClock.adjust(Duration.millis(5))
      const started = yield* Effect.sync(() => Spans.start("redis.get", "client", attributes))
      yield* Effect.sync(() => Spans.end(started!, Exit.void))
      yield* Effect.sync(() => Spans.ender()(Spans.start("redis.set", "client", attributes)!, Exit.void))
      expect(spans.map((s) => [s.startTime, s.ends[0]?.time])).toEqual([[0n, 0n], [0n, 0n]])
    }).pipe(Effect.withTracerTiming(false), Effect.withTracer(tracer))
  })

  it.effect("ender: spans that end together share one reading of the clock; each ends once with its own outcome", () => {
    const { spans, tracer } = recordingTracer()
    const { clock, readings } = countingClock()
    return Effect.gen(function*() {
      const [a, b, c] = yield* Effect.sync(() => [
        Spans.start("redis.get", "client", attributes)!,
        Spans.start("redis.get", "client", attributes)!,
        Spans.start("redis.get", "client", attributes)!
      ] as const)
      expect(readings()).toBe(3)
      yield* Effect.sync(() => Spans.end(c, Exit.succeed("c")))
      expect(readings()).toBe(4)
      const end = Spans.ender()
      end(a, Exit.succeed("a"))
      end(b, Exit.fail("b"))
      end(c, Exit.succeed("again"))
      expect(readings()).toBe(5)
      expect(spans.map((s) => s.ends.map((e) => [e.time, e.exit]))).toEqual([
        [[1_000_000_005n, Exit.succeed("a")]],
        [[1_000_000_005n, Exit.fail("b")]],
        [[1_000_000_004n, Exit.succeed("c")]]
      ])
      // A fresh ender reads the clock again.
      const other = yield* Effect.sync(() => Spans.start("redis.set", "client", attributes)!)
      Spans.ender()(other, Exit.void)
      expect(readings()).toBe(7)
      expect(spans[3]!.ends[0]!.time).toBe(1_000_000_007n)
    }).pipe(Effect.withClock(clock), Effect.withTracer(tracer))
  })

  it.effect("ender: spans timed by different clocks each get their own clock's time", () => {
    const { spans, tracer } = recordingTracer()
    const first = countingClock()
    const second = countingClock()
    return Effect.gen(function*() {
      const a = yield* Effect.sync(() => Spans.start("redis.get", "client", attributes)!).pipe(Effect.withClock(first.clock))
      const b = yield* Effect.sync(() => Spans.start("redis.get", "client", attributes)!).pipe(Effect.withClock(second.clock))
      yield* Effect.sync(() => Spans.start("redis.get", "client", attributes)!).pipe(Effect.withTracerTiming(false))
      const end = Spans.ender()
      end(a, Exit.void)
      end(b, Exit.void)
      expect([first.readings(), second.readings()]).toEqual([2, 2])
      expect(spans.map((s) => s.ends[0]?.time)).toEqual([1_000_000_002n, 1_000_000_002n, undefined])
    }).pipe(Effect.withTracer(tracer))
  })
})

describe("Spans: events", () => {
  it.effect("on the current span, at the clock's time, with the attributes built then", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      yield* TestClock.adjust(Duration.millis(3))
      yield* Effect.sync(() => Spans.event("cache.fallback", () => ({ "cache.operation": "get" }))).pipe(
        Effect.withSpan("request")
      )
      const request = spans.find((s) => s.name === "request")!
      expect(request.events).toEqual([{ name: "cache.fallback", time: 3_000_000n, attributes: { "cache.operation": "get" } }])
      expect(spans.length).toBe(1)
    }).pipe(Effect.withTracer(tracer))
  })

  it.effect("with no current span (or only an external parent): a span of its own, started and ended at once", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      yield* TestClock.adjust(Duration.millis(4))
      yield* Effect.sync(() => Spans.event("cache.fallback", () => ({ "cache.operation": "set" })))
      const external = Tracer.externalSpan({ spanId: "ext", traceId: "t" })
      yield* Effect.sync(() => Spans.event("cache.fallback", () => ({ "cache.operation": "get" }))).pipe(
        Effect.withParentSpan(external)
      )
      expect(spans.map((s) => [s.name, s.kind, s.startTime, s.ends.map((e) => [e.time, e.exit]), Object.fromEntries(s.attributes)]))
        .toEqual([
          ["cache.fallback", "internal", 4_000_000n, [[4_000_000n, Exit.void]], { "cache.operation": "set" }],
          ["cache.fallback", "internal", 4_000_000n, [[4_000_000n, Exit.void]], { "cache.operation": "get" }]
        ])
      expect(Option.map(spans[1]!.parent, (p) => p.spanId)).toEqual(Option.some("ext"))
    }).pipe(Effect.withTracer(tracer))
  })
})
