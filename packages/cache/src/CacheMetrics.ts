/**
 * The cache's Effect `Metric`s: the original service's names (`cache_get_error_total`, `cache_timeout_total`,
 * `circuit_open_total`; `redis_connection_pool_size` and `redis_health_check_interval` live with the connection)
 * plus hits, misses, fallbacks, errors by reason, decode failures and a latency histogram.
 *
 * They are process-wide; export them with any Effect metrics exporter (OpenTelemetry, Prometheus).
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/**
 * Failed reads (`get`, `getMany`) against Redis, tagged `reason`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const getErrors = Metric.counter("cache_get_error_total", { description: "Redis reads that failed", incremental: true })

/**
 * Redis calls that hit their deadline (`reason` `timeout` or `socket_timeout`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const timeouts = Metric.counter("cache_timeout_total", { description: "Redis calls that timed out", incremental: true })

/**
 * Times the circuit breaker opened.
 *
 * @since 0.1.0
 * @category metrics
 */
export const circuitOpens = Metric.counter("circuit_open_total", { description: "Circuit breaker openings", incremental: true })

/**
 * @since 0.1.0
 * @category metrics
 */
export const hits = Metric.counter("cache_hit_total", {
  description: "Keys found (a value a TypedCache then fails to decode is counted here and in cache_miss_total)",
  incremental: true
})

/**
 * @since 0.1.0
 * @category metrics
 */
export const misses = Metric.counter("cache_miss_total", {
  description: "Lookups answered with nothing: keys not found, and values a TypedCache failed to decode",
  incremental: true
})

/**
 * Operations served by the in-memory fallback because Redis failed or the breaker was open, tagged `operation`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const fallbacks = Metric.counter("cache_fallback_total", { description: "Operations served by the memory fallback", incremental: true })

/**
 * Every Redis failure, tagged `operation` and `reason`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const errors = Metric.counter("cache_error_total", { description: "Redis failures by operation and reason", incremental: true })

/**
 * Stored values that did not decode with the caller's `Schema` (served as misses).
 *
 * @since 0.1.0
 * @category metrics
 */
export const decodeErrors = Metric.counter("cache_decode_error_total", { description: "Values that failed to decode", incremental: true })

/**
 * Times more keys awaited reconciliation than the resilient cache's `maxPending`: each one flushes the cache's
 * namespace in Redis (logged once per overflow).
 *
 * @since 0.2.0
 * @category metrics
 */
export const reconcileOverflows = Metric.counter("cache_reconcile_overflow_total", {
  description: "Pending-key overflows, each answered by a namespace flush",
  incremental: true
})

/**
 * Keys the resilient cache repaired in Redis after a fault (deleted or written back), tagged `action`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const reconciled = Metric.counter("cache_reconciled_total", {
  description: "Keys repaired in Redis after writes or deletes it did not acknowledge",
  incremental: true
})

/**
 * Reads answered from the fallback because their key awaited reconciliation (Redis' answer could be the value a write
 * replaced). Not counted in `cache_fallback_total`: Redis did not fail them.
 *
 * @since 0.2.0
 * @category metrics
 */
export const pendingReads = Metric.counter("cache_pending_read_total", {
  description: "Reads answered locally because their key awaits reconciliation",
  incremental: true
})

/**
 * Keys written or deleted while Redis did not acknowledge, not yet repaired (Redis is not read for them).
 *
 * @since 0.2.0
 * @category metrics
 */
export const pendingKeys = Metric.gauge("cache_pending_keys", {
  description: "Keys awaiting reconciliation with Redis"
})

/**
 * Latency of cache operations in seconds, tagged `operation` and `backend`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const latency = Metric.histogram(
  "cache_operation_duration_seconds",
  MetricBoundaries.exponential({ start: 0.00005, factor: 2, count: 18 }),
  "Cache operation latency"
)

/**
 * The hybrid cache's fail-safe: values served past their L1 TTL (or after a loss of trust) because Redis failed or a
 * factory was too slow or failed, tagged `reason` (`l2_failed`, `throttled`, `soft_timeout`, `hard_timeout`,
 * `factory_failed`).
 *
 * @since 0.3.0
 * @category metrics
 */
export const staleServed = Metric.counter("cache_stale_served_total", {
  description: "Stale values served by the hybrid cache's fail-safe",
  incremental: true
})

/**
 * The hybrid cache's `getOrSet` factory control, tagged `event` (`soft_timeout`, `hard_timeout`, `eager_refresh`,
 * `background_done`, `background_failed`, `superseded`).
 *
 * @since 0.3.0
 * @category metrics
 */
export const factoryEvents = Metric.counter("cache_factory_event_total", {
  description: "getOrSet factory timeouts, background completions and eager refreshes",
  incremental: true
})
