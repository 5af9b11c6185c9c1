/**
 * Captures the spans a program makes through Effect's `Tracer`, to assert on them: names, kinds, parents, attributes,
 * events and how each span ended, as an exporter would receive them. Install it around the program under test
 * (`Effect.withTracer(program, capture.tracer)` or `Layer.setTracer(capture.tracer)`); Steadfast makes its spans on the
 * tracer of the calling fiber, so they are captured too. The first `maxSpans` spans are kept.
 *
 * @since 0.6.0
 */
import type * as Exit from "effect/Exit"
import type * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

/**
 * @since 0.6.0
 * @category models
 */
export interface CapturedEvent {
  readonly name: string
  /** Nanoseconds, on the clock the span was made with (`TestClock` in `it.effect`). */
  readonly time: bigint
  readonly attributes: Readonly<Record<string, unknown>>
}

/**
 * @since 0.6.0
 * @category models
 */
export interface CapturedSpan {
  readonly name: string
  readonly kind: Tracer.SpanKind
  readonly parent: Option.Option<Tracer.AnySpan>
  readonly startTime: bigint
  /** Attributes as set, in order; a key set twice keeps its last value. */
  readonly attributes: ReadonlyMap<string, unknown>
  readonly events: ReadonlyArray<CapturedEvent>
  readonly links: ReadonlyArray<Tracer.SpanLink>
  /** How it ended (each `end` call: a span ended twice shows two); empty while it runs. */
  readonly ends: ReadonlyArray<{ readonly time: bigint; readonly exit: Exit.Exit<unknown, unknown> }>
  /** The span object the program was given (to compare with a child's `parent`). */
  readonly span: Tracer.Span
}

/**
 * @since 0.6.0
 * @category models
 */
export interface SpanCapture {
  /** The first `maxSpans` spans, in the order they started. */
  readonly spans: ReadonlyArray<CapturedSpan>
  /** The spans named `name`. */
  readonly named: (name: string) => ReadonlyArray<CapturedSpan>
  readonly tracer: Tracer.Tracer
}

/**
 * @since 0.6.0
 * @category constructors
 */
export const make = (options: { readonly maxSpans?: number | undefined } = {}): SpanCapture => {
  const maxSpans = options.maxSpans ?? 10_000
  const spans: Array<CapturedSpan> = []
  let made = 0
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      const events: Array<CapturedEvent> = []
      const ends: Array<{ time: bigint; exit: Exit.Exit<unknown, unknown> }> = []
      // A copy: the array a tracer is given may be shared between spans.
      const ownLinks = [...links]
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span-${++made}`,
        traceId: "captured",
        parent,
        context,
        get status(): Tracer.SpanStatus {
          const end = ends[0]
          return end === undefined
            ? { _tag: "Started", startTime }
            : { _tag: "Ended", startTime, endTime: end.time, exit: end.exit }
        },
        attributes,
        links: ownLinks,
        sampled: true,
        kind,
        end: (time, exit) => void ends.push({ time, exit }),
        attribute: (key, value) => void attributes.set(key, value),
        event: (name, time, attributes) => void events.push({ name, time, attributes: attributes ?? {} }),
        addLinks: (added) => void ownLinks.push(...added)
      }
      if (spans.length < maxSpans) {
        spans.push({ name, kind, parent, startTime, attributes, events, links: ownLinks, ends, span })
      }
      return span
    },
    context: (f) => f()
  })
  return { spans, named: (name) => spans.filter((s) => s.name === name), tracer }
}
