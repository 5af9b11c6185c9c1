/**
 * The contenders, each behind one promise-based shape (`PromiseClient`) for the outage and recovery scenarios; the
 * happy path drives Steadfast Effect-natively (see happy.ts) and everything else through this shape.
 *
 * Configurations (see README.md, "Contenders"):
 * - ioredis: `new Redis({ host, port })`, nothing else.
 * - ioredis auto-pipelining: the same plus `enableAutoPipelining: true`.
 * - cockatiel: the README's policy, `wrap(retry(maxAttempts 3, ExponentialBackoff), circuitBreaker(ConsecutiveBreaker(5),
 *   halfOpenAfter))`, plus an aggressive `timeout` policy innermost; the retry does not retry `BrokenCircuitError`.
 * - opossum: the README's options `{ timeout, errorThresholdPercentage: 50, resetTimeout }`.
 * - BentoCache: an L2-only store (`bentostore().useL2Layer(redisDriver(...))`, no L1, so reads hit Redis) with
 *   `l2CircuitBreakerDuration` and `suppressL2Errors: true`; its ioredis gets `commandTimeout`.
 * - cache-manager: `createCache({ stores: [createKeyv({ url, commandOptions: { timeout } })] })` (no memory store).
 */
import { createKeyv } from "@keyv/redis"
import { BentoCache, bentostore } from "bentocache"
import { redisDriver } from "bentocache/drivers/redis"
import { createCache } from "cache-manager"
import {
  BrokenCircuitError,
  circuitBreaker,
  ConsecutiveBreaker,
  ExponentialBackoff,
  handleAll,
  handleWhen,
  retry,
  timeout,
  TimeoutStrategy,
  wrap
} from "cockatiel"
import { Redis } from "ioredis"
import CircuitBreaker from "opossum"

export interface Target {
  readonly host: string
  readonly port: number
}

export interface ResilienceSettings {
  /** The per-call deadline given to the libraries that have one (ms). */
  readonly timeoutMs: number
  /** How long a breaker stays open before it lets a call through (ms). */
  readonly halfOpenAfterMs: number
}

export type BreakerState = "closed" | "open" | "half-open" | "n/a"

export interface PromiseClient {
  readonly name: string
  readonly get: (key: string) => Promise<string | null | undefined>
  readonly set: (key: string, value: string) => Promise<unknown>
  /** The Redis key a logical key is stored under. */
  readonly rawKey: (key: string) => string
  readonly breaker: () => BreakerState
  /** Whether this client only fails fast once its breaker is open (for the "after the breaker opens" figures). */
  readonly hasBreaker: boolean
  readonly close: () => Promise<void>
}

export type PeerName = "ioredis" | "ioredis-autopipeline" | "cockatiel" | "opossum" | "bentocache" | "cache-manager"
export const peerNames: ReadonlyArray<PeerName> = [
  "ioredis",
  "ioredis-autopipeline",
  "cockatiel",
  "opossum",
  "bentocache",
  "cache-manager"
]

const closeRedis = async (redis: Redis): Promise<void> => {
  if (redis.status === "ready") {
    await Promise.race([redis.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 500))])
  }
  redis.disconnect(false)
}

const waitReady = (redis: Redis): Promise<void> =>
  redis.status === "ready"
    ? Promise.resolve()
    : new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("ioredis not ready after 5 s")), 5000)
      redis.once("ready", () => {
        clearTimeout(timer)
        resolve()
      })
    })

const silence = (redis: Redis) => {
  // ioredis logs unhandled "error" events to the console; the outage makes plenty.
  redis.on("error", () => {})
  return redis
}

const rawIoredis = async (name: string, target: Target, autoPipelining: boolean): Promise<PromiseClient> => {
  const redis = silence(new Redis({ host: target.host, port: target.port, ...(autoPipelining ? { enableAutoPipelining: true } : {}) }))
  await waitReady(redis)
  return {
    name,
    get: (key) => redis.get(key),
    set: (key, value) => redis.set(key, value),
    rawKey: (key) => key,
    breaker: () => "n/a",
    hasBreaker: false,
    close: () => closeRedis(redis)
  }
}

const cockatielClient = async (target: Target, settings: ResilienceSettings): Promise<PromiseClient> => {
  const redis = silence(new Redis({ host: target.host, port: target.port }))
  await waitReady(redis)
  const breaker = circuitBreaker(handleAll, {
    halfOpenAfter: settings.halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(5)
  })
  const policy = wrap(
    retry(handleWhen((error) => !(error instanceof BrokenCircuitError)), { maxAttempts: 3, backoff: new ExponentialBackoff() }),
    breaker,
    timeout(settings.timeoutMs, TimeoutStrategy.Aggressive)
  )
  return {
    name: "cockatiel",
    get: (key) => policy.execute(() => redis.get(key)),
    set: (key, value) => policy.execute(() => redis.set(key, value)),
    rawKey: (key) => key,
    // CircuitState: Closed 0, Open 1, HalfOpen 2, Isolated 3
    breaker: () => (breaker.state === 0 ? "closed" : breaker.state === 2 ? "half-open" : "open"),
    hasBreaker: true,
    close: () => closeRedis(redis)
  }
}

const opossumClient = async (target: Target, settings: ResilienceSettings): Promise<PromiseClient> => {
  const redis = silence(new Redis({ host: target.host, port: target.port }))
  await waitReady(redis)
  const breaker = new CircuitBreaker((call: () => Promise<unknown>) => call(), {
    timeout: settings.timeoutMs,
    errorThresholdPercentage: 50,
    resetTimeout: settings.halfOpenAfterMs
  })
  return {
    name: "opossum",
    get: (key) => breaker.fire(() => redis.get(key)) as Promise<string | null>,
    set: (key, value) => breaker.fire(() => redis.set(key, value)),
    rawKey: (key) => key,
    breaker: () => (breaker.opened ? "open" : breaker.halfOpen ? "half-open" : "closed"),
    hasBreaker: true,
    close: async () => {
      breaker.shutdown()
      await closeRedis(redis)
    }
  }
}

const bentoClient = async (target: Target, settings: ResilienceSettings): Promise<PromiseClient> => {
  const redis = silence(new Redis({ host: target.host, port: target.port, commandTimeout: settings.timeoutMs }))
  await waitReady(redis)
  const prefix = "bench:bento"
  const bento = new BentoCache({
    default: "redis",
    l2CircuitBreakerDuration: settings.halfOpenAfterMs,
    suppressL2Errors: true,
    ttl: "1h",
    stores: { redis: bentostore().useL2Layer(redisDriver({ connection: redis, prefix })) }
  })
  // Probe whether the breaker is open: BentoCache has no public state; we infer it from the last call's speed.
  return {
    name: "bentocache",
    get: (key) => bento.get<string>({ key }).then((v) => v ?? null),
    set: (key, value) => bento.set({ key, value }),
    rawKey: (key) => `${prefix}:${key}`,
    breaker: () => "n/a",
    hasBreaker: true,
    close: async () => {
      await bento.disconnectAll().catch(() => undefined)
      redis.disconnect(false)
    }
  }
}

const cacheManagerClient = async (target: Target, settings: ResilienceSettings): Promise<PromiseClient> => {
  const namespace = "bench:cm"
  const keyv = createKeyv(
    { url: `redis://${target.host}:${target.port}`, commandOptions: { timeout: settings.timeoutMs } },
    { namespace }
  )
  keyv.on("error", () => {})
  const cache = createCache({ stores: [keyv] })
  await cache.set("bench:cm-ready", "1")
  return {
    name: "cache-manager",
    get: (key) => cache.get<string>(key).then((v) => v ?? null),
    set: (key, value) => cache.set(key, value),
    rawKey: (key) => `${namespace}::${key}`,
    breaker: () => "n/a",
    hasBreaker: false,
    close: async () => {
      await cache.del("bench:cm-ready").catch(() => undefined)
      await Promise.race([cache.disconnect().catch(() => undefined), new Promise((r) => setTimeout(r, 1000))])
    }
  }
}

export const makePeer = (name: PeerName, target: Target, settings: ResilienceSettings): Promise<PromiseClient> => {
  switch (name) {
    case "ioredis":
      return rawIoredis(name, target, false)
    case "ioredis-autopipeline":
      return rawIoredis(name, target, true)
    case "cockatiel":
      return cockatielClient(target, settings)
    case "opossum":
      return opossumClient(target, settings)
    case "bentocache":
      return bentoClient(target, settings)
    case "cache-manager":
      return cacheManagerClient(target, settings)
  }
}
