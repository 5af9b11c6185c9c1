/**
 * @since 0.1.0
 */
export * as Classification from "./Classification.js"
/**
 * @since 0.1.0
 */
export * as RedisConfig from "./RedisConfig.js"
/**
 * @since 0.1.0
 */
export * as RedisConnection from "./RedisConnection.js"
/**
 * @since 0.2.0
 */
export * as ScriptedConnection from "./ScriptedConnection.js"
/**
 * @since 0.4.0
 */
export * as Spans from "./Spans.js"
