/**
 * Distributed stampede control for the hybrid cache's `getOrSet`: a Redis lock per key, so that one instance runs the
 * factory while the others wait for its value.
 *
 * - **Acquire**: `SET <lock key> <random token> NX PX <ttl>`. The lock key is the value's key under a namespace of its
 *   own, `__steadfast:lock:`, after the cache's `keyPrefix` (the hybrid cache refuses keys under `__steadfast:`, so a
 *   lock is never read or written as a value).
 * - **Release**: a Lua script deletes the key only if it still holds this holder's token (a holder whose lock expired
 *   and was taken by another instance must not delete the other's lock). Sent with `EVALSHA`, `EVAL` on `NOSCRIPT`.
 * - **Holder**: reads the value once more after acquiring (an instance that held the lock may have stored it and
 *   released between this one's miss and its `SET NX`), then runs the factory and stores its value *before* releasing.
 *   With `extend` (default), the lock's expiry is pushed back (`PEXPIRE` by a token-checking script) every `ttl / 3`
 *   while the factory runs: a slow factory keeps its lock as long as its process lives and reaches Redis. Without it,
 *   or when extending fails (Redis unreachable, or the lock already expired and was taken: `lock_lost`), a factory
 *   slower than `ttl` lets another instance take the lock and run the factory too (a second run; both store, the
 *   later write wins).
 * - **Waiters** (the lock is held elsewhere): sleep `poll`, doubling up to `maxPoll`; at each step read the value
 *   (through L2, filling L1) and answer it when it is there; otherwise try `SET NX` again, which succeeds once the
 *   holder released without storing (its factory failed) or its lock expired (its process died): this instance then
 *   holds the lock. After `maxWait` (default 3 x `ttl`) without either, run the factory here (`lock_wait_timeout`).
 * - **Lock unavailable** (the breaker rejects, or a lock command failed: Redis down, a timeout): run the factory here.
 *   It stays bounded: the whole thing runs inside the process' single flight for the key, so at most one factory per
 *   key per process.
 *
 * Lock commands go through the connection (its deadline) but not through the breaker's counting: the breaker is
 * consulted (an open breaker means no lock), and data reads and writes keep it informed.
 *
 * Time comes from Effect's `Clock` (`TestClock` drives the waits in tests).
 *
 * @internal
 */
import { createHash, randomBytes } from "node:crypto"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type { RedisConnection } from "@steadfast/redis"
import type { Redis } from "ioredis"

/** Keys under this namespace (after the cache's `keyPrefix`) are the cache's own: locks, the canary. */
export const reservedNamespace = "__steadfast:"
/** Where a key's lock lives, relative to the cache's `keyPrefix`. */
export const lockKeyOf = (key: string): string => `${reservedNamespace}lock:${key}`

/**
 * A lock command could not be answered: the breaker rejects (`circuit_open`), or the command failed (its failure's
 * `reason`: `timeout`, `connection_refused`, ...). The factory then runs in this process.
 *
 * @internal
 */
export class LockUnavailableError extends Data.TaggedError("LockUnavailableError")<{
  readonly key: string
  readonly reason: string
}> {}

/** The three lock commands. Keys are the cache's (the prefix is the store's business). */
export interface LockStore {
  /** `SET NX PX`: whether this token now holds the lock. */
  readonly acquire: (lockKey: string, token: string, ttlMillis: number) => Effect.Effect<boolean, LockUnavailableError>
  /** Deletes the lock if `token` holds it: whether it did. */
  readonly release: (lockKey: string, token: string) => Effect.Effect<boolean, LockUnavailableError>
  /** Sets the lock's expiry to `ttlMillis` from now if `token` holds it: whether it did. */
  readonly extend: (lockKey: string, token: string, ttlMillis: number) => Effect.Effect<boolean, LockUnavailableError>
}

/**
 * @since 0.3.0
 * @category models
 */
export interface LockOptions {
  /** The lock's expiry: how long a holder that died blocks the others (default 10 s). */
  readonly ttl?: Duration.DurationInput | undefined
  /** Extend the lock every `ttl / 3` while the factory runs (default true). */
  readonly extend?: boolean | undefined
  /** A waiter's first pause between checks (default 10 ms); doubles up to `maxPoll` (default 200 ms). */
  readonly poll?: Duration.DurationInput | undefined
  readonly maxPoll?: Duration.DurationInput | undefined
  /**
   * The longest a waiter waits for another instance's factory before running it itself (default: 3 x `ttl`; an
   * extended lock can be held longer than `ttl` by a live holder).
   */
  readonly maxWait?: Duration.DurationInput | undefined
}

export interface ResolvedLock {
  readonly ttlMs: number
  readonly extend: boolean
  readonly pollMs: number
  readonly maxPollMs: number
  readonly maxWaitMs: number
}

export const defaults = { ttlMs: 10_000, pollMs: 10, maxPollMs: 200 } as const

const millis = (name: string, input: Duration.DurationInput | undefined, fallback: number): number => {
  if (input === undefined) return fallback
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded) || !Duration.isFinite(decoded.value) || Duration.toMillis(decoded.value) <= 0) {
    throw new Error(`lock.${name} must be a positive, finite duration`)
  }
  return Duration.toMillis(decoded.value)
}

/** Validates (throws a message naming the bad option); `undefined` / `false`: no lock. */
export const resolve = (options: boolean | LockOptions | undefined): ResolvedLock | undefined => {
  if (options === undefined || options === false) return undefined
  if (options === true) return resolve({})
  if (typeof options !== "object" || options === null) throw new Error(`lock must be a boolean or an object, got ${String(options)}`)
  if (options.extend !== undefined && typeof options.extend !== "boolean") throw new Error("lock.extend must be a boolean")
  const ttlMs = millis("ttl", options.ttl, defaults.ttlMs)
  const pollMs = millis("poll", options.poll, defaults.pollMs)
  const maxPollMs = millis("maxPoll", options.maxPoll, Math.max(defaults.maxPollMs, pollMs))
  if (maxPollMs < pollMs) throw new Error("lock.maxPoll must not be shorter than lock.poll")
  return { ttlMs, extend: options.extend ?? true, pollMs, maxPollMs, maxWaitMs: millis("maxWait", options.maxWait, 3 * ttlMs) }
}

/** What the lock needs from the cache for one key. */
export interface Work<E, R> {
  /** The value in L2 now (through L1's miss path), if any. */
  readonly peek: Effect.Effect<Option.Option<string>>
  /** Run the factory and store its value. */
  readonly produce: Effect.Effect<string, E, R>
  /**
   * A refresh (eager): a value exists, the point is to replace it. The holder does not read it again first; a waiter
   * answers whatever value it finds (the current one) rather than wait for the refresh.
   */
  readonly refresh: boolean
  /** A lock event; `detail`: why the lock was unavailable (`circuit_open`, `timeout`, ...). */
  readonly event: (name: string, detail?: string) => void
}

const newToken = () => randomBytes(16).toString("hex")

/**
 * `work.produce` under the key's lock, or the value another instance stored meanwhile, or (lock unavailable, waited
 * too long) `work.produce` here. Events: `lock_acquired`, `lock_busy`, `lock_value_found`, `lock_unavailable`,
 * `lock_wait_timeout`, `lock_extended`, `lock_lost`, `lock_release_failed`.
 */
export const run = <E, R>(store: LockStore, key: string, lock: ResolvedLock, work: Work<E, R>): Effect.Effect<string, E, R> => {
  const lockKey = lockKeyOf(key)
  const token = newToken()
  const { event } = work
  /** Told once: by the extender (the token was gone) or by the release (nothing to delete). */
  let lost = false
  const lose = () => {
    if (lost) return
    lost = true
    event("lock_lost")
  }
  const local = (name: string, detail?: string) => Effect.suspend(() => (event(name, detail), work.produce))

  const extender = Effect.flatMap(store.extend(lockKey, token, lock.ttlMs), (held) =>
    held ? Effect.sync(() => event("lock_extended")) : Effect.fail("lost" as const)).pipe(
      // A failed extension (Redis unreachable) is tried again at the next tick; a lost lock stops it.
      Effect.catchTag("LockUnavailableError", () => Effect.void),
      Effect.repeat(Schedule.spaced(Duration.millis(Math.max(1, Math.floor(lock.ttlMs / 3))))),
      Effect.catchAll(() => Effect.sync(lose)),
      Effect.delay(Duration.millis(Math.max(1, Math.floor(lock.ttlMs / 3))))
    )
  const release = Effect.matchEffect(store.release(lockKey, token), {
    onFailure: () => Effect.sync(() => event("lock_release_failed")),
    onSuccess: (released) => released ? Effect.void : Effect.sync(lose)
  })
  /** Holding the lock: (read again,) produce with the lock extended, store, then release (whatever happens). */
  const held = (recheck: boolean): Effect.Effect<string, E, R> => {
    const producing = lock.extend
      ? Effect.scoped(Effect.zipRight(Effect.forkScoped(extender), work.produce))
      : work.produce
    const body = recheck
      ? Effect.flatMap(work.peek, (found) => {
        if (Option.isNone(found)) return producing
        event("lock_value_found")
        return Effect.succeed(found.value)
      })
      : producing
    return Effect.ensuring(body, release)
  }

  const wait = (startedAt: number, pause: number): Effect.Effect<string, E, R> =>
    Effect.flatMap(Effect.zipRight(Effect.sleep(Duration.millis(pause)), work.peek), (found) => {
      if (Option.isSome(found)) {
        event("lock_value_found")
        return Effect.succeed(found.value)
      }
      return Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), (now) => {
        if (now - startedAt >= lock.maxWaitMs) return local("lock_wait_timeout")
        return Effect.matchEffect(store.acquire(lockKey, token, lock.ttlMs), {
          onFailure: (error) => local("lock_unavailable", error.reason),
          onSuccess: (acquired) => {
            if (!acquired) return wait(startedAt, Math.min(pause * 2, lock.maxPollMs))
            // The holder released without storing (its factory failed) or its lock expired (it died): ours now. Its
            // value may have landed just before: read once more.
            event("lock_acquired")
            return held(true)
          }
        })
      })
    })

  return Effect.matchEffect(store.acquire(lockKey, token, lock.ttlMs), {
    onFailure: (error) => local("lock_unavailable", error.reason),
    onSuccess: (acquired) => {
      if (acquired) {
        event("lock_acquired")
        return held(!work.refresh)
      }
      event("lock_busy")
      return Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), (now) => wait(now, lock.pollMs))
    }
  })
}

const script = (source: string) => ({ source, sha: createHash("sha1").update(source).digest("hex") })
const releaseScript = script(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`)
const extendScript = script(
  `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`
)

/**
 * The lock commands on a Redis connection, under `keyPrefix`. `rejecting(key)`: the cache's breaker would reject a
 * write of that (unprefixed) key now.
 */
export const redisStore = (
  connection: RedisConnection.RedisConnection,
  keyPrefix: string,
  rejecting: (key: string) => boolean
): LockStore => {
  const call = <A>(operation: string, lockKey: string, f: (redisKey: string) => (client: Redis) => Promise<A>) =>
    Effect.suspend(() =>
      rejecting(lockKey)
        ? Effect.fail(new LockUnavailableError({ key: lockKey, reason: "circuit_open" }))
        : Effect.mapError(
          connection.execute(operation, f(keyPrefix + lockKey)),
          (error) => new LockUnavailableError({ key: lockKey, reason: error.reason })
        )
    )
  const evalScript = (client: Redis, s: { source: string; sha: string }, key: string, args: Array<string>) =>
    client.evalsha(s.sha, 1, key, ...args).catch((error: unknown) =>
      String((error as Error)?.message ?? error).startsWith("NOSCRIPT")
        ? client.eval(s.source, 1, key, ...args)
        : Promise.reject(error)
    )
  return {
    acquire: (lockKey, token, ttlMillis) =>
      call("lock_acquire", lockKey, (k) => (c) => c.set(k, token, "PX", ttlMillis, "NX").then((reply) => reply === "OK")),
    release: (lockKey, token) =>
      call("lock_release", lockKey, (k) => (c) => evalScript(c, releaseScript, k, [token]).then((n) => Number(n) === 1)),
    extend: (lockKey, token, ttlMillis) =>
      call("lock_extend", lockKey, (k) => (c) => evalScript(c, extendScript, k, [token, String(ttlMillis)]).then((n) => Number(n) === 1))
  }
}
