/**
 * An HTTP service on `@effect/platform` that users can copy: a read-through product endpoint in front of a slow
 * "database", with the resilient cache between them, and the endpoints an operator needs.
 *
 *   GET /products/:id   the product, from the cache or (on a miss) the 20 ms database, cached for five minutes
 *   GET /metrics        Prometheus text (`@steadfast/otel`)
 *   GET /health/live    liveness: 200 while the process serves, whatever Redis does
 *   GET /health/ready   readiness: the cache's health; Redis down is `"degraded"`, still 200 (reads are served
 *                       from memory, and a 503 would take every instance out at once when a shared Redis fails)
 *   GET /health         same as /health/ready
 *   GET /stats          the cache's `stats` as JSON (the URL in it carries no password)
 *
 *   pnpm build && pnpm --filter @steadfast/examples service
 *                       # PORT (default 3000), REDIS_URL and CACHE_* as in the README's Configuration
 *
 * @since 0.1.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cache, ResilientCache } from "@steadfast/cache"
import { PrometheusMetrics } from "@steadfast/otel"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { createServer } from "node:http"
import { pathToFileURL } from "node:url"
import { getProduct } from "./program.js"

const health = Effect.flatMap(Cache.Cache, (cache) => cache.health).pipe(
  Effect.map((h) => ({
    status: h.status,
    redis: h.redis,
    circuitState: h.circuitState,
    latencyMs: Option.getOrNull(h.latencyMs),
    error: Option.getOrNull(h.error)
  }))
)

const ready = Effect.flatMap(health, (body) => HttpServerResponse.json(body))

/**
 * The routes; they need a `Cache` and `PrometheusMetrics`.
 *
 * @since 0.1.0
 * @category routes
 */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/products/:id",
    Effect.gen(function*() {
      const { id } = yield* HttpRouter.params
      if (id === undefined || id.length === 0 || id.length > 64) {
        return yield* HttpServerResponse.json({ error: "bad product id" }, { status: 400 })
      }
      const product = yield* getProduct(id)
      return yield* HttpServerResponse.json({ id: product.id, name: product.name, priceCents: product.priceCents })
    })
  ),
  HttpRouter.get(
    "/metrics",
    Effect.gen(function*() {
      const prometheus = yield* PrometheusMetrics.PrometheusMetrics
      return HttpServerResponse.text(yield* prometheus.scrape, { contentType: prometheus.contentType })
    })
  ),
  HttpRouter.get(
    "/health/live",
    Effect.flatMap(health, (h) => HttpServerResponse.json({ status: "alive", cache: h.status }))
  ),
  HttpRouter.get("/health/ready", ready),
  HttpRouter.get("/health", ready),
  HttpRouter.get(
    "/stats",
    Effect.flatMap(Cache.Cache, (cache) => cache.stats).pipe(Effect.flatMap((stats) => HttpServerResponse.json(stats)))
  )
)

/**
 * The HTTP server on `port` (0 picks a free one; read it from `HttpServer.HttpServer`'s `address`), serving
 * `router` with request logging; it still needs a `Cache` and `PrometheusMetrics`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly port: number; readonly host?: string }) =>
  HttpServer.serve(router).pipe(
    HttpServer.withLogAddress,
    Layer.provideMerge(
      NodeHttpServer.layer(createServer, { port: options.port, ...(options.host === undefined ? {} : { host: options.host }) })
    )
  )

/** `pnpm service`: the resilient cache configured from the environment, metrics on `/metrics`. */
const main = Layer.unwrapEffect(
  Effect.map(Config.integer("PORT").pipe(Config.withDefault(3000)), (port) => layer({ port }))
).pipe(
  Layer.provide(ResilientCache.layerConfig({ keyPrefix: "steadfast:service:" })),
  Layer.provide(PrometheusMetrics.layer({ serviceName: "steadfast-example-service" }))
)

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Layer.launch(main).pipe(NodeRuntime.runMain)
}
