/**
 * No command is written to a cluster node after its caller already had its answer. ioredis' `Cluster` sends a command
 * again after `MOVED` / `ASK` / `TRYAGAIN` / `CLUSTERDOWN` and after its node's socket closed ("Connection is closed.",
 * `retryDelayOnFailover`), and a node's socket that is still connecting holds commands in its own offline queue.
 * Steadfast's deadline does not cancel the ioredis command: the caller is told "timeout" (outcome unknown) and may
 * write the key again; if that newer write is acknowledged and the older one is written afterwards, Redis holds the
 * older value (a stale read, the project's hardest rule; through `ResilientCache` too, once its reconciler has repaired
 * the key). Both tests failed before `internal/cluster.ts` guarded the re-sends (the key held "old"):
 *
 * - a primary pausing writes (`CLIENT PAUSE <ms> WRITE`, what a graceful `CLUSTER FAILOVER` does to the old primary;
 *   a stalled primary behaves the same): the "old" write waits, its caller times out, a newer write is sent by
 *   another client; the paused socket's timeout (1.25 x the deadline) closes it, which discards "old" on the server,
 *   and ioredis sends it again after `retryDelayOnFailover`, behind the newer write;
 * - a primary this client had no socket to yet (ioredis connects a node at its first command) pausing every client:
 *   the "old" write waits in the node's offline queue for the socket's handshake, its caller times out, a newer write
 *   is acknowledged when the pause ends, and only then is "old" written.
 */
import { describe, expect, it } from "@effect/vitest"
import { LogCapture, RedisCluster } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { Cluster } from "ioredis"
import * as RedisConfig from "../src/RedisConfig.js"
import * as RedisConnection from "../src/RedisConnection.js"

const connect = (cluster: RedisCluster.RedisCluster, commandTimeout: Duration.DurationInput) =>
  RedisConnection.make(Either.getOrThrow(RedisConfig.fromOptions({
    url: `redis+cluster://${cluster.seeds.map((s) => `${s.host}:${s.port}`).join(",")}`,
    commandTimeout
  })))

const failureReason = (exit: Exit.Exit<unknown, { readonly reason: string }>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.reason : Exit.isSuccess(exit) ? "success" : "other"

const notRetried = (logs: LogCapture.LogCapture) =>
  logs.lines.filter((l) => l.message.includes("not retried")).map((l) => ({
    command: String(l.annotations.command),
    error: String(l.annotations.error_message)
  }))

describe("Cluster: no re-send after the caller's deadline", () => {
  it.scopedLive(
    "a write that timed out on a write-paused primary is not re-sent over a newer acknowledged write (single, coalesced)",
    () =>
      Effect.gen(function*() {
        const cluster = yield* RedisCluster.make()
        // 300 ms deadline: socket timeout 375 ms, retryDelayOnFailover 30 ms.
        const logs = LogCapture.make()
        const redis = yield* connect(cluster, "300 millis").pipe(Effect.provide(logs.layer))
        const key = "{resend}single"
        const batched = "{resend}batched"
        const primary = yield* cluster.primaryFor(key)
        const server = cluster.servers.find((s) => s.port === primary.port)!
        yield* redis.mset([[key, "initial"], [batched, "initial"]], Option.none()).pipe(Effect.retry({ times: 4 }))

        // Writes pause on the key's primary for 1.2 s (PING, CLUSTER SLOTS and reads still answer).
        yield* Effect.addFinalizer(() => Effect.ignore(server.command("CLIENT", "UNPAUSE")))
        expect(yield* server.command("CLIENT", "PAUSE", "1200", "WRITE")).toBe("OK")
        const pausedAt = performance.now()

        // The older writes: their callers are told "timeout" (outcome unknown) at the deadline.
        const [single, coalesced] = yield* Effect.all([
          Effect.exit(redis.set(key, "old", Option.none())),
          Effect.exit(redis.setBatched(batched, "old", Option.none()))
        ], { concurrency: "unbounded" })
        expect(failureReason(single)).toBe("timeout")
        expect(failureReason(coalesced)).toBe("timeout")
        const timedOutAt = performance.now() - pausedAt

        // The newer writes, sent after the older ones' callers were told: another client, acknowledged when the pause
        // ends. (Before the pause ends the old socket times out, at 375 ms, and ioredis re-sends "old" behind these.)
        const ackd = yield* Effect.all([server.command("SET", key, "new"), server.command("SET", batched, "new")], {
          concurrency: "unbounded"
        })
        expect(ackd).toEqual(["OK", "OK"])
        const ackedAt = performance.now() - pausedAt

        // Whatever ioredis still had to send has had time to land (its retries stop within 6 x (375 + 30) ms).
        yield* Effect.sleep("1500 millis")
        const after = yield* Effect.all([server.command("GET", key), server.command("GET", batched)])
        console.log(
          `cluster re-send: callers timed out ${Math.round(timedOutAt)} ms into the pause, the newer writes acknowledged at ` +
            `${Math.round(ackedAt)} ms; then the key holds ${JSON.stringify(after)}`
        )
        expect(after).toEqual(["new", "new"])
        // The socket closed under them after their callers were told ("Connection is closed."): ioredis would have
        // sent them again. (On a slow machine the socket may close first; then the re-send itself is refused.)
        const refused = notRetried(logs)
        console.log(`cluster re-send: not retried ${JSON.stringify(refused)}`)
        expect(refused.map((r) => r.command)).toEqual(["set", "set"])
        // The connection still works afterwards.
        yield* redis.set(key, "later", Option.none()).pipe(Effect.retry({ times: 4 }))
        expect(yield* redis.get(key)).toBe("later")
      }),
    { timeout: 60_000 }
  )

  it.scopedLive(
    "a write waiting for its node's connection (ioredis' per-node offline queue) is not written after the deadline",
    () =>
      Effect.gen(function*() {
        const cluster = yield* RedisCluster.make()
        // 1 s deadline: the socket timeout (1,250 ms) must not close the connecting socket before the pause ends.
        const logs = LogCapture.make()
        const redis = yield* connect(cluster, "1 second").pipe(Effect.provide(logs.layer))
        const client = yield* redis.execute("peek", (c) => Promise.resolve(c as unknown as Cluster))
        // ioredis connects a node's socket at its first command (lazyConnect): a primary nothing was sent to yet.
        const idle = client.nodes("master").find((n) => n.status === "wait")
        expect(idle).toBeDefined()
        const port = idle!.options.port
        const key = Array.from({ length: 1000 }, (_, i) => `resend:${i}`).find((k) =>
          client.slots[RedisCluster.slot(k)]?.[0] === `127.0.0.1:${port}`
        )!
        expect(key).toBeDefined()
        const server = cluster.servers.find((s) => s.port === port)!
        expect(yield* server.command("SET", key, "initial")).toBe("OK")

        // Every client of that primary pauses for 1,050 ms (its cluster bus does not): the new socket's handshake
        // (CLIENT SETNAME, the ready check's INFO) waits, and the SET waits in the node's offline queue behind it.
        yield* Effect.addFinalizer(() => Effect.ignore(server.command("CLIENT", "UNPAUSE")))
        expect(yield* server.command("CLIENT", "PAUSE", "1050", "ALL")).toBe("OK")
        const pausedAt = performance.now()
        const old = yield* Effect.exit(redis.set(key, "old", Option.none()))
        expect(failureReason(old)).toBe("timeout")
        const timedOutAt = performance.now() - pausedAt
        // The newer write: paused too, acknowledged when the pause ends, before the socket is ready.
        expect(yield* server.command("SET", key, "new")).toBe("OK")
        const ackedAt = performance.now() - pausedAt
        yield* Effect.sleep("1 second")
        const after = yield* server.command("GET", key)
        console.log(
          `cluster offline queue: the caller timed out ${Math.round(timedOutAt)} ms into the pause, the newer write was ` +
            `acknowledged at ${Math.round(ackedAt)} ms; then the key holds ${JSON.stringify(after)}`
        )
        expect(after).toBe("new")
        // Refused where it would have been written, once the socket was ready ("set not sent to <node>: ...").
        const refused = notRetried(logs)
        console.log(`cluster offline queue: not retried ${JSON.stringify(refused)}`)
        expect(refused.map((r) => r.command)).toEqual(["set"])
        yield* redis.set(key, "later", Option.none()).pipe(Effect.retry({ times: 4 }))
        expect(yield* redis.get(key)).toBe("later")
      }),
    { timeout: 60_000 }
  )
})
