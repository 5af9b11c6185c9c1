/**
 * @since 0.1.0
 */
export * as PrometheusMetrics from "./PrometheusMetrics.js"
