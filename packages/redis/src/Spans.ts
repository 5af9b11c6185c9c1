/**
 * Spans made synchronously, from inside a step the caller's fiber is running (an `Effect.async` registration, a
 * `sync` body): no effect of their own, no stack capture, no copy of the fiber's context.
 *
 * Why not `Effect.withSpan`: it captures a stack trace for every span, wraps the call in two more frames and copies
 * the fiber's context to install the new parent. Measured at 8-11 µs a call whether a tracer read the spans or not
 * (2026-12-02, `benchmarks/src/ab.ts` on the happy path, both orders, a loaded 2-core box: spans always made ran at
 * 0.4-0.6x the throughput at c=1 and 0.13-0.19x at c=64), several times a Redis round trip. A span made here costs
 * what the installed tracer's `span()` costs.
 *
 * Which tracer: the one the calling fiber has, read at each call, so a tracer installed after the layer was built (or
 * only around some requests, `Effect.withTracer`) sees the spans made under it. Two cases make no span:
 * - the tracer was turned off the Effect way (`Effect.withTracerEnabled(false)`);
 * - the tracer is Effect's built-in one, which keeps spans in memory where nothing can read them: the calls inside
 *   these spans run no user code that could ask for the current span, so making them would change nothing anybody
 *   can observe, at a cost (its spans allocate and read the clock twice).
 *
 * The parent is the fiber's current span (honouring `Tracer.DisablePropagation`); span annotations and links set
 * with `Effect.annotateSpans` / `Effect.linkSpans` are applied, as `Effect.withSpan` would.
 *
 * @since 0.4.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import * as Chunk from "effect/Chunk"

/** The tracer of a runtime nobody configured: Effect's in-process one. */
const nativeTracer = Effect.runSync(Effect.tracer)
const zero = BigInt(0)

/**
 * The parent a new span gets: the current span, or the nearest ancestor whose context does not disable propagation.
 */
const parentOf = (span: Tracer.AnySpan | undefined): Option.Option<Tracer.AnySpan> => {
  let current = span
  while (current !== undefined) {
    if (!Context.get(current.context, Tracer.DisablePropagation)) return Option.some(current)
    current = current._tag === "Span" ? Option.getOrUndefined(current.parent) : undefined
  }
  return Option.none()
}

/** What a span made on a fiber takes from its fiber refs (see {@link settingsOf}). */
interface Settings {
  /** Tracing turned on (`Effect.withTracerEnabled`). */
  readonly enabled: boolean
  /** The clock spans are timed with; `undefined` with timing off (`Effect.withTracerTiming(false)`). */
  readonly clock: Clock.Clock | undefined
  readonly links: ReadonlyArray<Tracer.SpanLink>
  /** `Effect.annotateSpans`' annotations; `undefined` when there are none. */
  readonly annotations: HashMap.HashMap<string, unknown> | undefined
}

/**
 * The settings of a fiber's refs, kept per `FiberRefs` value. Effect never changes a `FiberRefs` in place (setting a
 * ref makes a new one), so while a fiber's refs are the same object the settings read from them are the same: a span
 * then costs one lookup here instead of a lookup per ref (five reads of the fiber's refs and services per span were
 * most of what a span cost Steadfast under load, measured with `benchmarks/experiments/tracecost.mjs`). The refs object
 * is read from Effect's fiber (`_fiberRefs`, not in its typings: `getFiberRefs()` copies the refs each call); were it
 * ever missing, every span reads its refs again, as before.
 */
const settingsByRefs = new WeakMap<object, Settings>()
const readSettings = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Settings => {
  const annotations = fiber.getFiberRef(FiberRef.currentTracerSpanAnnotations)
  return {
    enabled: fiber.getFiberRef(FiberRef.currentTracerEnabled),
    clock: fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
      ? Context.get(fiber.currentDefaultServices, Clock.Clock)
      : undefined,
    links: Chunk.toReadonlyArray(fiber.getFiberRef(FiberRef.currentTracerSpanLinks)),
    annotations: HashMap.size(annotations) > 0 ? annotations : undefined
  }
}
const settingsOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Settings => {
  const refs = (fiber as unknown as { readonly _fiberRefs?: object })._fiberRefs
  if (refs === undefined) return readSettings(fiber)
  let settings = settingsByRefs.get(refs)
  if (settings === undefined) settingsByRefs.set(refs, settings = readSettings(fiber))
  return settings
}

/** The running fiber, when it has a tracer that reads spans and tracing is on; `undefined` otherwise. */
const tracingFiber = () => {
  const current = Fiber.getCurrentFiber()
  if (current._tag === "None") return undefined
  const fiber = current.value
  return fiber.currentTracer === nativeTracer || !settingsOf(fiber).enabled ? undefined : fiber
}

/**
 * Whether the running fiber's spans are read: it has a tracer other than Effect's built-in one, and tracing is on.
 *
 * @since 0.4.0
 */
export const enabled = (): boolean => tracingFiber() !== undefined

/**
 * A span {@link start} made, with the clock that timed its start (the fiber's: `TestClock` in tests).
 *
 * @since 0.4.0
 * @category models
 */
export interface Started {
  readonly span: Tracer.Span
  readonly clock: Clock.Clock | undefined
}

/**
 * Starts a span on the current fiber's tracer, or answers `undefined` when no span is to be made (no fiber running,
 * tracing turned off, or Effect's built-in tracer: see the module's note). End it with {@link end}.
 *
 * Must be called synchronously from code a fiber is running.
 *
 * @since 0.4.0
 */
export const start = (
  name: string,
  kind: Tracer.SpanKind,
  attributes: Readonly<Record<string, unknown>>
): Started | undefined => {
  const current = Fiber.getCurrentFiber()
  if (current._tag === "None") return undefined
  const fiber = current.value
  if (fiber.currentTracer === nativeTracer) return undefined
  const { annotations, clock, enabled, links } = settingsOf(fiber)
  if (!enabled) return undefined
  const span = fiber.currentTracer.span(
    name,
    parentOf(fiber.currentSpan),
    Context.empty(),
    links,
    clock === undefined ? zero : clock.unsafeCurrentTimeNanos(),
    kind
  )
  if (annotations !== undefined) HashMap.forEach(annotations, (value, key) => span.attribute(key, value))
  for (const key in attributes) span.attribute(key, attributes[key])
  return { span, clock }
}

/**
 * Ends a span {@link start} made, with the call's outcome, at the current time of the clock it started on (the
 * code that ends it may run on no fiber: a promise callback).
 *
 * @since 0.4.0
 */
export const end = (started: Started, exit: Exit.Exit<unknown, unknown>): void => {
  const { clock, span } = started
  if (span.status._tag === "Ended") return
  span.end(clock === undefined ? zero : clock.unsafeCurrentTimeNanos(), exit)
}

/**
 * Ends spans that finish at the same instant (the callers of one coalesced reply) with {@link end}'s semantics, reading
 * each clock once for all of them rather than once per span. Make one per instant; do not keep it.
 *
 * @since 0.5.0
 */
export type Ender = (started: Started, exit: Exit.Exit<unknown, unknown>) => void

/** @since 0.5.0 */
export const ender = (): Ender => {
  let clock: Clock.Clock | undefined | null = null
  let at = zero
  return ({ clock: own, span }, exit) => {
    if (span.status._tag === "Ended") return
    if (own !== clock) {
      clock = own
      at = own === undefined ? zero : own.unsafeCurrentTimeNanos()
    }
    span.end(at, exit)
  }
}

/**
 * Records `name` as an event on the running fiber's current span; when it has none (or only an external parent), as
 * a span of its own that starts and ends now, so the event is never invisible. Nothing under Effect's built-in tracer
 * or with tracing off. `attributes` is only called when something is recorded.
 *
 * @since 0.4.0
 */
export const event = (name: string, attributes: () => Readonly<Record<string, unknown>>): void => {
  const fiber = tracingFiber()
  if (fiber === undefined) return
  const parent = fiber.currentSpan
  const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
  const now = clock.unsafeCurrentTimeNanos()
  if (parent?._tag === "Span") return parent.event(name, now, attributes())
  const started = start(name, "internal", attributes())
  if (started !== undefined) started.span.end(now, Exit.void)
}
