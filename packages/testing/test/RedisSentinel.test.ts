import * as ChildProcess from "node:child_process"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { Redis } from "ioredis"
import { RedisSentinel } from "@steadfast/testing"

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    expect((e as NodeJS.ErrnoException).code).toBe("ESRCH")
    return false
  }
}

/** redis-server processes (sentinels too) whose parent is this test process. */
const redisChildren = (): Array<string> =>
  ChildProcess.execFileSync("ps", ["-o", "pid=,stat=,comm=", "--ppid", String(process.pid)], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.includes("redis-"))

const timed = <A, E, R>(label: string, self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = Date.now()
    const value = yield* self
    console.log(`${label}: ${Date.now() - start} ms`)
    return value
  })

/** An ioredis client through the sentinels, disconnected when the scope closes. */
const client = (set: RedisSentinel.RedisSentinel) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Redis({ sentinels: set.sentinels.map((s) => ({ host: s.host, port: s.port })), name: set.masterName })
    ),
    (c) => Effect.sync(() => c.disconnect())
  )

const roleOf = (set: RedisSentinel.RedisSentinel, port: number) =>
  Effect.map(
    set.servers.find((s) => s.port === port)!.command("ROLE"),
    (reply) => (reply as ReadonlyArray<unknown>)[0]
  )

describe("RedisSentinel", () => {
  it.live("fails over, kills the primary, the old primary returns as a replica; no process left", () =>
    Effect.gen(function*() {
      const pids: Array<number> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const set = yield* timed("make", RedisSentinel.make())
        for (const server of [...set.servers, ...set.sentinelServers]) pids.push((yield* server.pid)!)
        expect(set.sentinels).toHaveLength(3)
        const first = yield* set.primary
        expect(first.port).toBe(set.servers[0]!.port)
        expect(yield* roleOf(set, first.port)).toBe("master")

        const redis = yield* client(set)
        yield* Effect.promise(() => redis.set("k", "v1"))
        expect(yield* Effect.promise(() => redis.get("k"))).toBe("v1")

        const graceful = yield* timed("failover", set.failover)
        expect(graceful.from.port).toBe(first.port)
        expect(graceful.to.port).not.toBe(first.port)
        expect((yield* set.primary).port).toBe(graceful.to.port)
        expect(yield* roleOf(set, graceful.to.port)).toBe("master")
        const newPrimary = set.servers.find((s) => s.port === graceful.to.port)!
        expect(yield* newPrimary.command("GET", "k")).toBe("v1")

        const killed = yield* timed("killPrimary", set.killPrimary)
        expect(killed.from.port).toBe(graceful.to.port)
        expect(killed.to.port).not.toBe(graceful.to.port)
        expect(yield* roleOf(set, killed.to.port)).toBe("master")
        expect(isAlive(pids[set.servers.findIndex((s) => s.port === killed.from.port)]!)).toBe(false)

        // the killed primary returns with its original configuration (a primary), and is demoted
        const back = yield* timed("restartOld", set.restartOld)
        expect(back.node.port).toBe(killed.from.port)
        expect(yield* roleOf(set, killed.from.port)).toBe("slave")
        pids.push((yield* set.servers.find((s) => s.port === killed.from.port)!.pid)!)

        // the client follows the sentinels to the current primary
        yield* Effect.promise(() => redis.set("k", "v2"))
        const current = set.servers.find((s) => s.port === killed.to.port)!
        expect(yield* current.command("GET", "k")).toBe("v2")
      }))
      expect(pids.filter(isAlive)).toEqual([])
      expect(redisChildren()).toEqual([])
    }), 60_000)

  it.live("a stalled primary is replaced, and comes back as a replica once resumed", () =>
    Effect.gen(function*() {
      const pids: Array<number> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const set = yield* RedisSentinel.make()
        for (const server of [...set.servers, ...set.sentinelServers]) pids.push((yield* server.pid)!)
        const stalled = yield* set.stallPrimary
        const change = yield* timed("stall -> new primary", set.awaitPrimaryChange(stalled))
        expect(change.to.port).not.toBe(stalled.port)
        const back = yield* timed("resume -> replica", set.restartOld)
        expect(back.node.port).toBe(stalled.port)
        expect(yield* roleOf(set, stalled.port)).toBe("slave")
        // leave a node stalled: closing the scope must still take it down
        yield* set.stallPrimary
      }))
      expect(pids.filter(isAlive)).toEqual([])
      expect(redisChildren()).toEqual([])
    }), 60_000)

  it.live("interrupting make at any point leaves no process behind", () =>
    Effect.gen(function*() {
      for (const delay of [0, 100, 400]) {
        const fiber = yield* Effect.fork(Effect.scoped(RedisSentinel.make()))
        yield* Effect.sleep(Duration.millis(delay))
        yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(yield* Fiber.await(fiber))).toBe(true)
        expect(redisChildren()).toEqual([])
      }
    }))
})
