/**
 * Export Effect's spans to OpenTelemetry through `@effect/opentelemetry`'s `NodeSdk`: one layer, one line.
 *
 * ```ts
 * import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
 * import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
 *
 * const MainLive = ResilientCache.layerConfig().pipe(
 *   Layer.provide(Tracing.layer({ serviceName: "api", spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter()) }))
 * )
 * ```
 *
 * Provide it anywhere the program's fibers get it (`Layer.provide`, `Layer.merge`, `Effect.provide` around some
 * requests only): the Redis connection and the resilient cache read the tracer of the calling fiber at each call
 * (`@steadfast/redis`'s `Spans`), so a tracer installed after the cache was built is seen. With it, every Redis command is a
 * `redis.<operation>` span (kind `client`, `db.system.name`, `db.operation.name`, `db.namespace`, `server.address`,
 * `server.port`), a fallback is a `cache.fallback` event on the caller's span (a `cache.fallback` span of its own when
 * the caller has none), and each reconciliation round is a `cache.reconcile` span (on the tracer where the cache was
 * built: the reconciler outlives requests). `Effect.withTracerEnabled(false)` turns them off for a region the Effect
 * way. Under Effect's built-in tracer (nothing installed), whose spans nothing can read, none are made.
 *
 * @since 0.1.0
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type * as Resource from "@effect/opentelemetry/Resource"
import type * as OtelApi from "@opentelemetry/api"
import type * as Duration from "effect/Duration"
import type * as Layer from "effect/Layer"

/**
 * The span processor(s) the tracer provider feeds, as `NodeSdk` takes them (`SimpleSpanProcessor`,
 * `BatchSpanProcessor` from `@opentelemetry/sdk-trace-base`, or your own).
 *
 * @since 0.1.0
 * @category models
 */
export type SpanProcessor = NonNullable<NodeSdk.Configuration["spanProcessor"]>

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Where spans go: wrap an exporter in a `BatchSpanProcessor` (or a `SimpleSpanProcessor` in tests). */
  readonly spanProcessor: SpanProcessor
  /** `service.name` of the OpenTelemetry resource; default `"steadfast"`. */
  readonly serviceName?: string | undefined
  /** `service.version` of the OpenTelemetry resource. */
  readonly serviceVersion?: string | undefined
  /** More resource attributes (`deployment.environment.name`, ...). */
  readonly attributes?: OtelApi.Attributes | undefined
  /** How long the provider may take to flush and shut down when the layer's scope closes; default 3 s. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

/**
 * Installs an OpenTelemetry tracer (a `NodeTracerProvider` over `spanProcessor`) as Effect's tracer for the life of
 * the layer; on release the provider flushes what is buffered and shuts down.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Resource.Resource> =>
  NodeSdk.layer(() => ({
    spanProcessor: options.spanProcessor,
    resource: {
      serviceName: options.serviceName ?? "steadfast",
      ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion }),
      ...(options.attributes === undefined ? {} : { attributes: options.attributes })
    },
    ...(options.shutdownTimeout === undefined ? {} : { shutdownTimeout: options.shutdownTimeout })
  }))
