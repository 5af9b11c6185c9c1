/**
 * A small service function written against the `Cache` service only: it does not know (or care) whether Redis,
 * memory, or the resilient composition is behind it. Tests provide `MemoryCache.layer()`; production provides
 * `ResilientCache.layerConfig()`.
 */
import { Cache, TypedCache } from "@steadfast/cache"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

export class Product extends Schema.Class<Product>("Product")({
  id: Schema.String,
  name: Schema.String,
  priceCents: Schema.Int
}) {}

/** Pretends to be a slow database: what the cache is there to spare. */
export const loadProductFromDatabase = (id: string) =>
  Effect.succeed(new Product({ id, name: `Product ${id}`, priceCents: 1999 })).pipe(Effect.delay("20 millis"))

/** Read-through: the cached product, or the database's, stored for five minutes. */
export const getProduct = (id: string) =>
  Effect.gen(function*() {
    const products = TypedCache.make(yield* Cache.Cache, Product)
    return yield* products.getOrSet(`product:${id}`, loadProductFromDatabase(id), { ttl: "5 minutes" })
  })
