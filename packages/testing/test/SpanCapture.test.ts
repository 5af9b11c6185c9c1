import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as SpanCapture from "../src/SpanCapture.js"

describe("SpanCapture", () => {
  it.effect("records names, parents, attributes, events and how each span ended, as an exporter would receive them", () => {
    const capture = SpanCapture.make()
    return Effect.gen(function*() {
      yield* Effect.annotateCurrentSpan("cache.operation", "get")
      yield* Effect.withSpan(Effect.fail("boom"), "inner", { kind: "client" }).pipe(Effect.ignore)
      yield* Effect.withSpan(Effect.void, "linked", { links: [] }).pipe(Effect.tap(() => Effect.logInfo("inside")))
    }).pipe(
      Effect.withSpan("outer"),
      Effect.withTracer(capture.tracer),
      Effect.tap(() => {
        expect(capture.spans.map((s) => s.name)).toEqual(["outer", "inner", "linked"])
        const [outer, inner] = [capture.named("outer")[0]!, capture.named("inner")[0]!]
        expect(Option.getOrUndefined(inner.parent)).toBe(outer.span)
        expect(inner.kind).toBe("client")
        expect(outer.attributes.get("cache.operation")).toBe("get")
        expect(inner.ends).toHaveLength(1)
        expect(Exit.isFailure(inner.ends[0]!.exit)).toBe(true)
        expect(outer.span.status._tag).toBe("Ended")
        // A log line written under a span is one of its events (Effect records them so).
        expect(outer.events.map((e) => e.name)).toEqual(["inside"])
      })
    )
  })

  it.effect("keeps only maxSpans spans; the program still gets a span for each", () => {
    const capture = SpanCapture.make({ maxSpans: 2 })
    return Effect.forEach([1, 2, 3], (i) => Effect.withSpan(Effect.succeed(i), `s${i}`)).pipe(
      Effect.withTracer(capture.tracer),
      Effect.tap((values) => {
        expect(values).toEqual([1, 2, 3])
        expect(capture.spans.map((s) => s.name)).toEqual(["s1", "s2"])
      })
    )
  })
})
