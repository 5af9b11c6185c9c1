import { describe, expect, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { Cluster } from "ioredis"
import { RedisCluster } from "@steadfast/testing"
import { crc16 } from "../src/internal/slot.js"

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    expect((e as NodeJS.ErrnoException).code).toBe("ESRCH")
    return false
  }
}

/** redis-server and redis-cli processes whose parent is this test process. */
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

/** An ioredis Cluster client over the cluster's seeds, quit when the scope closes. */
const client = (cluster: RedisCluster.RedisCluster) =>
  Effect.acquireRelease(
    Effect.sync(() => new Cluster(cluster.seeds.map((s) => ({ host: s.host, port: s.port })), { lazyConnect: true })),
    // not quit(): it waits for every node's reply, forever for a stalled one (finalizers are uninterruptible)
    (c) => Effect.sync(() => c.disconnect())
  )

const keys = Array.from({ length: 60 }, (_, i) => `key:${i}`)

describe("RedisCluster", () => {
  it("slot: CRC16/XMODEM modulo 16384, hash tags", () => {
    expect(crc16(Buffer.from("123456789"))).toBe(0x31c3)
    expect(RedisCluster.slot("foo")).toBe(12182) // CLUSTER KEYSLOT foo
    expect(RedisCluster.slot("{user1000}.following")).toBe(RedisCluster.slot("user1000"))
    expect(RedisCluster.slot("foo{}{bar}")).toBe(RedisCluster.slot("foo{}{bar}")) // empty tag: the whole key
    expect(RedisCluster.slot("foo{}{bar}")).not.toBe(RedisCluster.slot("bar"))
    expect(RedisCluster.slot("foo{{bar}}zap")).toBe(RedisCluster.slot("{bar"))
  })

  it.live("forms, serves keys across slots, fails over, kills, stalls and restarts; no process left", () =>
    Effect.gen(function*() {
      const pids: Array<number> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const cluster = yield* timed("make", RedisCluster.make())
        for (const server of cluster.servers) pids.push((yield* server.pid)!)
        expect(pids.every(isAlive)).toBe(true)

        const nodes = yield* cluster.nodes
        expect(nodes).toHaveLength(6)
        const primaries = yield* cluster.primaries
        expect(primaries.map((n) => n.role)).toEqual(["primary", "primary", "primary"])
        expect(primaries.map((n) => n.slots)).toEqual([[[0, 5460]], [[5461, 10922]], [[10923, 16383]]])
        for (let shard = 0; shard < 3; shard++) {
          expect(nodes.filter((n) => n.shard === shard).map((n) => n.role).sort()).toEqual(["primary", "replica"])
        }
        // our CRC16 agrees with the server's
        for (const key of ["a", "foo", "{tag}x", "über"]) {
          const server = cluster.servers[0]!
          expect(yield* server.command("CLUSTER", "KEYSLOT", key)).toBe(RedisCluster.slot(key))
        }

        const redis = yield* client(cluster)
        yield* Effect.promise(() => redis.connect())
        yield* Effect.promise(() => Promise.all(keys.map((k) => redis.set(k, `v-${k}`))))
        const shardsUsed = new Set<number>()
        for (const k of keys) {
          const primary = yield* cluster.primaryFor(k)
          shardsUsed.add(primary.shard)
          // the key lives on the primary primaryFor names (a direct command, no redirection)
          const server = cluster.servers.find((s) => s.port === primary.port)!
          expect(yield* server.command("GET", k)).toBe(`v-${k}`)
        }
        expect(shardsUsed.size).toBe(3)

        // graceful failover of shard 0
        const graceful = yield* timed("failover", cluster.failover(0))
        expect(graceful.to.port).not.toBe(graceful.from.port)
        expect((yield* cluster.primaries)[0]!.port).toBe(graceful.to.port)
        console.log(`failover reported ${Duration.format(graceful.duration)}`)

        // kill shard 1's primary: its replica is promoted
        const killed = yield* timed("killPrimary", cluster.killPrimary(1))
        expect(killed.to.port).not.toBe(killed.from.port)
        expect(isAlive(killed.from.pid!)).toBe(false)
        const afterKill = yield* cluster.nodes
        expect(afterKill.find((n) => n.port === killed.from.port)!.state).toBe("stopped")
        expect(afterKill.find((n) => n.port === killed.to.port)!.role).toBe("primary")

        // the old primary comes back as a replica
        const back = yield* timed("restart", cluster.restart(killed.from.port))
        expect(back.role).toBe("replica")
        expect(back.state).toBe("running")
        const restarted = cluster.servers.find((s) => s.port === killed.from.port)!
        pids.push((yield* restarted.pid)!)
        expect(((yield* restarted.command("ROLE")) as ReadonlyArray<unknown>)[0]).toBe("slave")

        // stall shard 2's primary: its replica takes over; resumed, the old primary becomes a replica
        const stalled = yield* cluster.stallNode(2)
        expect(stalled.state).toBe("stalled")
        yield* timed("stall -> healthy", cluster.awaitHealthy)
        expect((yield* cluster.primaries)[2]!.port).not.toBe(stalled.port)
        yield* cluster.resume()
        const healed = yield* timed("resume -> healthy", cluster.awaitHealthy)
        expect(healed.find((n) => n.port === stalled.port)!.role).toBe("replica")

        // every key is still readable through the cluster client (replicated before each failover)
        const values = yield* Effect.promise(() => Promise.all(keys.map((k) => redis.get(k))))
        expect(values).toEqual(keys.map((k) => `v-${k}`))

        // leave one node stalled: closing the scope must still take it down
        yield* cluster.stallNode(0)
      }))
      expect(pids.filter(isAlive)).toEqual([])
      expect(redisChildren()).toEqual([])
    }), 60_000)

  it.live("interrupting make at any point leaves no process behind", () =>
    Effect.gen(function*() {
      // while spawning, during redis-cli --cluster create, while waiting for the cluster to settle
      for (const delay of [0, 150, 700, 1500]) {
        const fiber = yield* Effect.fork(Effect.scoped(RedisCluster.make()))
        yield* Effect.sleep(Duration.millis(delay))
        yield* Fiber.interrupt(fiber)
        const exit = yield* Fiber.await(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(redisChildren()).toEqual([])
      }
    }))
})
