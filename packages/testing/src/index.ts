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
