/**
 * @since 0.1.0
 */
export * as PrometheusMetrics from "./PrometheusMetrics.js"

/**
 * @since 0.1.0
 */
export * as Tracing from "./Tracing.js"
