/**
 * Test tooling for Steadfast: a real `redis-server` as a scoped resource, and a TCP proxy that injects
 * network faults.
 *
 * @since 0.1.0
 */

/**
 * A real `redis-server` process as a scoped resource.
 *
 * @since 0.1.0
 * @category modules
 */
export * as RedisServer from "./RedisServer.js"

/**
 * A TCP proxy that injects network faults, switchable at run time.
 *
 * @since 0.1.0
 * @category modules
 */
export * as ChaosProxy from "./ChaosProxy.js"

/**
 * A concurrent read/write workload with a model of the writes: caller-visible errors, wrong values, p50/p99.
 *
 * @since 0.1.0
 */
export * as Workload from "./Workload.js"

/**
 * Captures Effect log lines (fields, levels) to assert on them, e.g. that no password is ever logged.
 *
 * @since 0.1.0
 */
export * as LogCapture from "./LogCapture.js"

/**
 * Captures the spans a program makes through Effect's tracer (names, attributes, events, ends), to assert on them.
 *
 * @since 0.6.0
 */
export * as SpanCapture from "./SpanCapture.js"

/**
 * A real Redis Cluster (3 primaries, 3 replicas) as a scoped resource, with failover, kill, stall and restart.
 *
 * @since 0.2.0
 * @category modules
 */
export * as RedisCluster from "./RedisCluster.js"

/**
 * A real Redis Sentinel set (a primary, 2 replicas, 3 sentinels) as a scoped resource, with failover, kill,
 * stall and the old primary's return.
 *
 * @since 0.2.0
 * @category modules
 */
export * as RedisSentinel from "./RedisSentinel.js"
