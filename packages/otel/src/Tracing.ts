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
 * Provide it **to** the cache layer (`Layer.provide` / `Layer.provideMerge`), not next to it (`Layer.merge`): the Redis
 * connection and the resilient cache decide once, when they are built, whether a tracer is installed, and layers
 * merged side by side are built concurrently, so the cache would not see it. With it, every Redis command is a
 * `redis.<operation>` span (kind `client`, `db.system.name`, `db.operation.name`, `db.namespace`, `server.address`,
 * `server.port`), a fallback is a `cache.fallback` event on the caller's span (a `cache.fallback` span of its own when
 * the caller has none), and each reconciliation round is a `cache.reconcile` span. `Effect.withTracerEnabled(false)`
 * turns them off for a region the Effect way.
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
