/**
 * Export Effect's metrics to Prometheus through `@effect/opentelemetry`: one layer, one line.
 *
 * ```ts
 * const MainLive = ResilientCache.layerConfig().pipe(Layer.provideMerge(PrometheusMetrics.layer({ port: 9464 })))
 * ```
 *
 * Every Effect counter declared `incremental: true` (all of Steadfast's are) is a Prometheus `counter`; Effect
 * counters that are not incremental come out as `gauge`s (that is how `@effect/opentelemetry` maps them). Effect
 * histograms keep their boundaries (`cache_operation_duration_seconds`: 50 µs doubling to 3.3 s, then +Inf).
 *
 * @since 0.1.0
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { CacheMetrics } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"

/**
 * Any Effect metric, whatever its input and output types (only its key is used, to register it).
 *
 * @since 0.1.0
 * @category models
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMetric = Metric.Metric<any, any, any>

/**
 * Every metric Steadfast declares. Effect only exports a metric once something touched it, so the layer reads each
 * of these once at start-up: a scrape lists them all (counters at 0) before the first fault.
 *
 * @since 0.1.0
 * @category metrics
 */
export const steadfastMetrics: ReadonlyArray<AnyMetric> = [
  CacheMetrics.getErrors,
  CacheMetrics.timeouts,
  CacheMetrics.circuitOpens,
  CacheMetrics.hits,
  CacheMetrics.misses,
  CacheMetrics.fallbacks,
  CacheMetrics.errors,
  CacheMetrics.decodeErrors,
  CacheMetrics.reconcileOverflows,
  CacheMetrics.reconciled,
  CacheMetrics.pendingReads,
  CacheMetrics.pendingKeys,
  CacheMetrics.latency,
  CacheMetrics.staleServed,
  CacheMetrics.factoryEvents,
  RedisConnection.poolSizeGauge,
  RedisConnection.healthCheckIntervalGauge,
  RedisConnection.healthCheckFailures
]

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `service.name` of the OpenTelemetry resource (the scrape's `target_info`); default `"steadfast"`. */
  readonly serviceName?: string | undefined
  /** `service.version` of the OpenTelemetry resource. */
  readonly serviceVersion?: string | undefined
  /**
   * Start the exporter's own HTTP server on this port (it answers `GET /metrics`). Leave it out to serve `scrape`
   * from your own HTTP server instead.
   */
  readonly port?: number | undefined
  /** The interface the exporter's own server binds to (with `port`). */
  readonly host?: string | undefined
  /** Metrics to list in every scrape from the start; default `steadfastMetrics`. */
  readonly register?: ReadonlyArray<AnyMetric> | undefined
}

/**
 * The Prometheus exporter of a running layer.
 *
 * @since 0.1.0
 * @category models
 */
export interface PrometheusMetrics {
  /** The process' Effect metrics in the Prometheus text format (version 0.0.4), what `GET /metrics` should answer. */
  readonly scrape: Effect.Effect<string>
  /** The content type of `scrape`'s text. */
  readonly contentType: string
  /** The OpenTelemetry metric reader behind it. */
  readonly exporter: PrometheusExporter
}

/**
 * @since 0.1.0
 * @category tags
 */
export const PrometheusMetrics: Context.Tag<PrometheusMetrics, PrometheusMetrics> = Context.GenericTag<PrometheusMetrics>(
  "@steadfast/otel/PrometheusMetrics"
)

/**
 * Exports the process' Effect metrics to Prometheus for the life of the layer (the exporter, and its server if
 * `port` is given, shut down when the layer's scope closes).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<PrometheusMetrics> =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const exporter = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new PrometheusExporter(
            options.port === undefined
              ? { preventServerStart: true }
              : { port: options.port, ...(options.host === undefined ? {} : { host: options.host }) }
          )
        ),
        // Shut down by the Metrics layer below once it has registered; this stops the server if that never happened.
        (exporter) => Effect.promise(() => exporter.stopServer()).pipe(Effect.ignore)
      )
      const serializer = new PrometheusSerializer("", false)
      const scrape = Effect.promise(() => exporter.collect()).pipe(
        Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics))
      )
      yield* Effect.forEach(options.register ?? steadfastMetrics, (metric) => Metric.value(metric), { discard: true })
      const resource = Resource.layer({
        serviceName: options.serviceName ?? "steadfast",
        ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion })
      })
      return Layer.merge(
        Layer.succeed(PrometheusMetrics, { scrape, contentType: "text/plain; version=0.0.4; charset=utf-8", exporter }),
        Metrics.layer(() => exporter).pipe(Layer.provide(resource))
      )
    })
  )
