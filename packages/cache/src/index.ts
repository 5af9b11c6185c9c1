/**
 * @since 0.1.0
 */
export * as Cache from "./Cache.js"
/**
 * @since 0.1.0
 */
export * as CacheMetrics from "./CacheMetrics.js"
/**
 * @since 0.2.0
 */
export * as FallbackStore from "./FallbackStore.js"
/**
 * @since 0.1.0
 */
export * as MemoryCache from "./MemoryCache.js"
/**
 * @since 0.1.0
 */
export * as RedisCache from "./RedisCache.js"
/**
 * @since 0.1.0
 */
export * as ResilientCache from "./ResilientCache.js"
/**
 * @since 0.1.0
 */
export * as TypedCache from "./TypedCache.js"
/**
 * @since 0.3.0
 */
export * as HybridCache from "./HybridCache.js"
