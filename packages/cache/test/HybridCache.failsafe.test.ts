/**
 * The hybrid cache's fail-safe (stale-on-error), against a spawned redis-server: values past their L1 TTL, or kept
 * after L1 lost trust, are served while Redis fails, within `failSafe.grace`, throttled per key; never a value that
 * was invalidated, nor one a write or delete through this process replaced. Plus L1's own rules (unit).
 */
import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Cache } from "../src/Cache.js"
import { L1 } from "../src/internal/l1.js"
import { hybrid, hybridStats, trusted, warm } from "./hybrid.utils.js"
import { eventually } from "./utils.js"

describe("L1 fail-safe (unit)", () => {
  it("keeps an expired entry as a stale value for the grace, never as a hit", () => {
    const l1 = new L1(10, 16, 1000)
    l1.fill("k", "v", l1.begin(), 100, 0)
    l1.end()
    expect(l1.get("k", 50)).toBe("v")
    expect(l1.get("k", 100)).toBeUndefined()
    expect(l1.stale("k", 100)?.value).toBe("v")
    expect(l1.stale("k", 1099)?.value).toBe("v")
    expect(l1.stale("k", 1100)).toBeUndefined()
    expect(l1.size).toBe(0)
  })

  it("demote keeps entries as stale values only; an invalidation or clear still drops them; a refill is a hit", () => {
    const l1 = new L1(10, 16, 1000)
    for (const k of ["a", "b", "c"]) l1.fill(k, k, l1.begin(), 100, 0)
    const inFlight = l1.begin()
    l1.demote()
    expect(l1.fill("x", "x", inFlight, 100, 0)).toBe(false) // a read across the loss of trust does not fill
    expect(l1.get("a", 10)).toBeUndefined()
    expect(l1.stale("a", 10)?.value).toBe("a")
    l1.invalidate("b")
    expect(l1.stale("b", 10)).toBeUndefined()
    l1.fill("a", "a2", l1.begin(), 100, 10)
    expect(l1.get("a", 20)).toBe("a2")
    l1.clear()
    expect(l1.stale("c", 10)).toBeUndefined()
  })

  it("without grace, demote is a clear and nothing is stale", () => {
    const l1 = new L1(10)
    l1.fill("a", "a", l1.begin(), 100, 0)
    l1.demote()
    expect(l1.size).toBe(0)
    l1.fill("b", "b", l1.begin(), 100, 0)
    expect(l1.stale("b", 200)).toBeUndefined()
  })
})

const withServer = <A, E>(body: (server: RedisServer.RedisServer, proxy: ChaosProxy.ChaosProxy) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* RedisServer.make()
    const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
    return yield* body(server, proxy)
  }))

const set = (server: RedisServer.RedisServer, key: string, value: string) => server.command("SET", `h:${key}`, value)
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(effect), ([d, a]) => [a, Duration.toMillis(d)] as const)
/** Reads another key until the breaker has closed again (its probe succeeded): Redis answers, not the fallback. */
const closed = (cache: Cache) =>
  eventually(Effect.gen(function*() {
    yield* cache.get("probe")
    return (yield* cache.stats).circuitState === "CLOSED"
  }), 10_000)

describe("HybridCache fail-safe (spawned redis-server)", () => {
  it.live("Redis stalled: a value past its L1 TTL is served stale, throttled; invalidated or locally written values never", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        // Data sockets through the proxy (stalled below), the subscriber straight to the server (invalidations flow).
        const { cache } = yield* hybrid(proxy.url(), {
          keyPrefix: "h:",
          mirror: false, // the fallback holds no copy: what is served comes from L1's fail-safe
          l1: { ttl: "300 millis" },
          failSafe: { grace: "1500 millis", throttle: "400 millis" },
          tracking: { subscriberAddress: { host: server.host, port: server.port } }
        })
        expect(yield* trusted(cache)).toBe(true)
        for (const k of ["a", "b", "c", "d", "e"]) yield* set(server, k, k)
        for (const k of ["a", "b", "c", "d", "e"]) expect(yield* warm(cache, k)).toBe(true)
        // b: invalidated by a foreign write; c: written through this process; d: deleted through this process.
        yield* set(server, "b", "b2")
        yield* cache.set("c", "c2")
        yield* cache.delete("d")
        yield* Effect.sleep("100 millis")
        const filledAt = Date.now()
        yield* proxy.setFault(ChaosProxy.Stall())
        yield* Effect.sleep("350 millis") // past the L1 TTL

        const [a1, firstMs] = yield* timed(cache.get("a"))
        expect(a1).toEqual(Option.some("a"))
        const s1 = yield* hybridStats(cache)
        expect(s1.failSafe!.byReason["l2_failed"]).toBe(1)
        const fallbacks1 = (yield* cache.stats).fallbacks
        // Throttled: answered stale at once, Redis not tried.
        const [a2, secondMs] = yield* timed(cache.get("a"))
        expect(a2).toEqual(Option.some("a"))
        expect((yield* cache.stats).fallbacks).toBe(fallbacks1)
        expect((yield* hybridStats(cache)).failSafe!.byReason["throttled"]).toBe(1)
        console.log(`fail-safe: first stale answer after ${firstMs.toFixed(0)} ms (Redis stalled), throttled ${secondMs.toFixed(2)} ms`)
        expect(secondMs).toBeLessThan(20)

        // Never the invalidated, written or deleted values.
        for (const k of ["b", "c", "d"]) {
          const found = yield* cache.get(k)
          expect(found).not.toEqual(Option.some(k))
        }
        expect(yield* cache.getMany(["a", "b", "c", "d", "e"])).toEqual([
          Option.some("a"),
          Option.none(),
          Option.none(),
          Option.none(),
          Option.some("e")
        ])
        // A delete through this process while Redis fails: the stale value goes with it.
        yield* cache.delete("e")
        expect(yield* cache.get("e")).toEqual(Option.none())
        // Past TTL + grace: nothing stale any more.
        yield* Effect.sleep(Math.max(0, filledAt + 300 + 1500 + 50 - Date.now()))
        expect(yield* cache.get("a")).toEqual(Option.none())
        const stats = yield* hybridStats(cache)
        expect(stats.failSafe!.staleServed).toBeGreaterThanOrEqual(3)
        yield* proxy.setFault(ChaosProxy.PassThrough())
      })))

  it.live("Redis down: entries kept after the loss of trust are served stale; once Redis answers, its answer wins", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { cache } = yield* hybrid(server.url, {
          keyPrefix: "h:",
          mirror: false,
          failSafe: { grace: "10 seconds", throttle: "200 millis" }
        })
        expect(yield* trusted(cache)).toBe(true)
        yield* set(server, "k", "old")
        yield* set(server, "j", "j")
        expect(yield* warm(cache, "k")).toBe(true)
        expect(yield* warm(cache, "j")).toBe(true)
        yield* server.stop
        yield* Effect.sleep("100 millis")
        const down = yield* hybridStats(cache)
        expect(down.trusted).toBe(false)
        expect(down.l1.demotions).toBeGreaterThanOrEqual(1)
        expect(yield* cache.get("k")).toEqual(Option.some("old"))
        expect(yield* cache.get("j")).toEqual(Option.some("j"))
        // A write through this process while Redis is down: never the old value afterwards.
        yield* cache.set("j", "j2")
        expect(yield* cache.get("j")).not.toEqual(Option.some("j"))
        yield* server.start
        expect(yield* trusted(cache, 10_000)).toBe(true)
        expect(yield* closed(cache)).toBe(true)
        yield* Effect.sleep("250 millis") // past the throttle
        // An empty server (no persistence): Redis answers "none", and the stale entry goes.
        expect(yield* cache.get("k")).toEqual(Option.none())
        yield* server.stop
        yield* Effect.sleep("100 millis")
        expect(yield* cache.get("k")).toEqual(Option.none())
        yield* server.start
      })))
})
