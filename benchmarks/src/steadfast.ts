/**
 * Steadfast's resilient cache, built ONCE in an outer scope (`Layer.buildWithScope`), so measurements run against a
 * live connection (building it inside each measured program would close the connection and measure the fallback).
 */
import { Cache, ResilientCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import type { PromiseClient } from "./contenders.js"

export interface SteadfastOptions {
  readonly url: string
  readonly maxConnections?: number
  /** `CACHE_SOCKET_TIMEOUT_MS`; the library default (2000 ms) when absent. */
  readonly commandTimeoutMs?: number
  readonly halfOpenAfterMs?: number
  readonly coalesce?: boolean
  /** Diagnostics only (the benchmark uses the default, true). */
  readonly mirror?: boolean
  /** The reconcile scenario's namespace (`keyPrefix`) and reconciliation settings; the library defaults otherwise. */
  readonly keyPrefix?: string
  readonly reconcile?: ResilientCache.ReconcileOptions
}

export interface Steadfast {
  readonly name: string
  readonly cache: Cache.Cache
  readonly runtime: Runtime.Runtime<never>
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>
  readonly stats: () => Promise<Cache.Stats>
  readonly client: PromiseClient
  readonly close: () => Promise<void>
}

/** The attributes of every no-op span: none, and the same empty map for all of them. */
const noAttributes: ReadonlyMap<string, unknown> = new Map()

/**
 * A span that records nothing, written as tracers write their spans (a class, its methods on the prototype: Effect's
 * `NativeSpan`, OpenTelemetry's `NonRecordingSpan`). Until 2026-12-05 the benchmark's no-op span was an object literal
 * with four new closures and a new `Map` per span, a cost no tracer has (`benchmarks/experiments/tracecost.mjs` keeps
 * it as a rung, to compare).
 */
class NoopSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId = "0"
  readonly traceId = "0"
  readonly sampled = false
  readonly attributes = noAttributes
  status: Tracer.SpanStatus
  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    readonly links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind
  ) {
    this.status = { _tag: "Started", startTime }
  }
  end(): void {}
  attribute(): void {}
  event(): void {}
  addLinks(): void {}
}

/**
 * A tracer whose spans record nothing (a new do-nothing span per call): installed around a Steadfast loop, its cost
 * is what making a span per call costs (issue 10's "tracing enabled but no-op"). Without it, calls run under Effect's
 * built-in tracer, for which no span is made (see `@steadfast/redis` `Spans`).
 */
export const noopTracer = Tracer.make({
  span: (name, parent, context, links, startTime, kind) => new NoopSpan(name, parent, context, links, startTime, kind),
  context: (f) => f()
})

/**
 * The benchmark's no-op tracer until 2026-12-05: a span as an object literal with four new closures and a new `Map`,
 * a cost no tracer has. Kept for the experiments that compare it (`benchmarks/experiments/tracecost.mjs`, `spancost.mjs`).
 */
export const closureNoopTracer = Tracer.make({
  span: (name, parent, context, links, startTime, kind) => ({
    _tag: "Span",
    name,
    spanId: "0",
    traceId: "0",
    parent,
    context,
    status: { _tag: "Started", startTime },
    attributes: new Map(),
    links,
    sampled: false,
    kind,
    end: () => {},
    attribute: () => {},
    event: () => {},
    addLinks: () => {}
  }),
  context: (f) => f()
})

/** The runtime every Steadfast call runs in: logs off unless verbose (an outage logs a warning per second). */
export const makeRuntime = (verbose: boolean): Runtime.Runtime<never> =>
  Effect.runSync(Effect.runtime<never>().pipe(Logger.withMinimumLogLevel(verbose ? LogLevel.Warning : LogLevel.None)))

export const layerOf = (options: SteadfastOptions) =>
  ResilientCache.layer({
    ...(options.coalesce === undefined ? {} : { coalesce: options.coalesce }),
    ...(options.mirror === undefined ? {} : { mirror: options.mirror }),
    ...(options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix }),
    ...(options.reconcile === undefined ? {} : { reconcile: options.reconcile }),
    ...(options.halfOpenAfterMs === undefined ? {} : { breaker: { halfOpenAfter: Duration.millis(options.halfOpenAfterMs) } })
  }).pipe(
    Layer.provide(
      RedisConnection.layer({
        url: options.url,
        ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
        ...(options.commandTimeoutMs === undefined ? {} : { commandTimeout: Duration.millis(options.commandTimeoutMs) })
      })
    )
  )

/** A layer built once in its own scope, and the means to run programs against it and to close it. */
export interface Built<I> {
  readonly context: Context.Context<I>
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>
  readonly close: () => Promise<void>
}

export const buildLayer = async <I, E>(layer: Layer.Layer<I, E>, runtime: Runtime.Runtime<never>): Promise<Built<I>> => {
  const run = <A, E2>(effect: Effect.Effect<A, E2>): Promise<A> => Runtime.runPromise(runtime)(effect)
  const scope = Effect.runSync(Scope.make())
  const context = await run(Layer.buildWithScope(layer, scope))
  return { context, run, close: () => run(Scope.close(scope, Exit.void)) }
}

export const buildSteadfast = async (
  name: string,
  options: SteadfastOptions,
  runtime: Runtime.Runtime<never>
): Promise<Steadfast> => {
  const built = await buildLayer(layerOf(options), runtime)
  const run = built.run
  const cache = Context.get(built.context, Cache.Cache)
  const state = { current: "closed" as "closed" | "open" | "half-open" }
  const stats = () => run(cache.stats)
  // A cheap view of the breaker state for the open-loop driver (which must not await it per call); started on
  // first use so the happy path does not pay for it.
  let poll: ReturnType<typeof setInterval> | undefined
  const startPolling = () => {
    if (poll !== undefined) return
    poll = setInterval(() => {
      void stats().then((s) => {
        state.current = s.circuitState === "OPEN" ? "open" : s.circuitState === "HALF_OPEN" ? "half-open" : "closed"
      })
    }, 5)
    poll.unref()
  }
  const close = async () => {
    if (poll !== undefined) clearInterval(poll)
    await built.close()
  }
  const client: PromiseClient = {
    name,
    get: (key) => run(Effect.map(cache.get(key), Option.getOrNull)),
    set: (key, value) => run(cache.set(key, value)),
    rawKey: (key) => key,
    breaker: () => {
      startPolling()
      return state.current
    },
    hasBreaker: true,
    close: () => close()
  }
  return {
    name,
    cache,
    runtime,
    run,
    stats,
    client,
    close
  }
}

/** What the reports keep of a Steadfast instance's stats (plain data: it crosses the happy path's IPC channel). */
export type StatsLite = Pick<Cache.Stats, "circuitState" | "circuitOpens" | "hits" | "misses" | "fallbacks" | "errors">

export const lite = (s: Cache.Stats): StatsLite => ({
  circuitState: s.circuitState,
  circuitOpens: s.circuitOpens,
  hits: s.hits,
  misses: s.misses,
  fallbacks: s.fallbacks,
  errors: s.errors
})

/** The figures that prove which path a measurement took. */
export const statsLine = (s: StatsLite): string =>
  `circuit=${s.circuitState} opens=${s.circuitOpens} hits=${s.hits} misses=${s.misses} fallbacks=${s.fallbacks} errors=${
    JSON.stringify(s.errors)
  }`
