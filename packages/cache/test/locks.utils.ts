import * as Effect from "effect/Effect"
import * as Lock from "../src/internal/lock.js"

/**
 * An in-memory lock store on the Clock, for the lock's `TestClock` tests (Redis cannot follow a test clock): locks by
 * key with expiry, a log of calls, `setDown` to make every command fail, `plant` for a lock nobody releases.
 */
export const memoryLocks = () => {
  const locks = new Map<string, { token: string; expiresAt: number }>()
  const log: Array<string> = []
  let down: string | undefined
  const now = Effect.clockWith((clock) => clock.currentTimeMillis)
  const live = (key: string, at: number) => {
    const lock = locks.get(key)
    if (lock !== undefined && lock.expiresAt <= at) {
      locks.delete(key)
      return undefined
    }
    return lock
  }
  const guard = <A>(key: string, f: (at: number) => A) =>
    Effect.flatMap(now, (at) => down === undefined ? Effect.succeed(f(at)) : Effect.fail(new Lock.LockUnavailableError({ key, reason: down })))
  const store: Lock.LockStore = {
    acquire: (key, token, ttl) =>
      guard(key, (at) => {
        log.push(`acquire ${token.slice(0, 4)} @${at}`)
        if (live(key, at) !== undefined) return false
        locks.set(key, { token, expiresAt: at + ttl })
        return true
      }),
    release: (key, token) =>
      guard(key, (at) => {
        log.push(`release @${at}`)
        if (live(key, at)?.token !== token) return false
        locks.delete(key)
        return true
      }),
    extend: (key, token, ttl) =>
      guard(key, (at) => {
        const lock = live(key, at)
        if (lock?.token !== token) return false
        lock.expiresAt = at + ttl
        return true
      })
  }
  return {
    store,
    locks,
    log,
    setDown: (reason: string | undefined) => (down = reason),
    /** A lock held by an instance that died: nobody releases or extends it. */
    plant: (key: string, ttl: number) => Effect.map(now, (at) => locks.set(Lock.lockKeyOf(key), { token: "dead", expiresAt: at + ttl }))
  }
}
