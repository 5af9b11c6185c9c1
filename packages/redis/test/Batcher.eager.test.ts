/**
 * A single caller is sent at once (internal/batcher.ts): after a tick that held one call, with no batch in flight, a
 * call is written to the socket before the tick ends; otherwise the tick's calls wait for its end and share one
 * request. Seen on a spawned `redis-server`'s socket: its `bytesWritten` right after the call, in the same step.
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisServer } from "@steadfast/testing"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { Redis } from "ioredis"
import * as RedisConfig from "../src/RedisConfig.js"
import * as RedisConnection from "../src/RedisConnection.js"

const connect = (options: RedisConfig.Options) => Effect.flatMap(Effect.orDie(RedisConfig.fromOptions(options)), RedisConnection.make)

const mgets = (server: RedisServer.RedisServer) =>
  Effect.map(server.command("INFO", "commandstats"), (reply) => Number(/cmdstat_mget:calls=(\d+)/.exec(String(reply))?.[1] ?? 0))

const together = <A, E>(effects: ReadonlyArray<Effect.Effect<A, E>>) => Effect.all(effects, { concurrency: "unbounded" })

describe("Batcher: a single caller is sent at once", () => {
  it.scopedLive("after a tick of one call the next call is written in its own step; after a tick of several, or with a batch in flight, it waits for the tick", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1 })
      yield* redis.mset([["k1", "v1"], ["k2", "v2"], ["k3", "v3"]], Option.none())
      let socket: Redis | undefined
      yield* redis.watchSockets!({ ready: (_, client) => (socket = client), closed: () => {} })
      const written = () => socket!.stream.bytesWritten
      /**
       * Reads `keys` in one step (one tick): for each, whether the socket was written to by the call itself, and
       * the answers once they come.
       */
      const readInOneStep = (keys: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          const answers = yield* Effect.forEach(keys, () => Deferred.make<string | null, unknown>())
          const sentAtOnce = yield* Effect.sync(() =>
            keys.map((key, i) => {
              const before = written()
              redis.unsafeGetBatched!(key, (exit) => Deferred.unsafeDone(answers[i]!, exit))
              return written() > before
            })
          )
          return { sentAtOnce, answers: Effect.forEach(answers, Deferred.await) }
        })

      // A tick of one call, then one: sent at once.
      expect(yield* redis.getBatched("k1")).toBe("v1")
      const first = yield* readInOneStep(["k2"])
      expect(first.sentAtOnce).toEqual([true])
      expect(yield* first.answers).toEqual(["v2"])

      // Still a single caller: at once again; the tick's second call waits for the tick (and shares its MGET with
      // nothing else: two MGETs in all).
      const before = yield* mgets(server)
      const two = yield* readInOneStep(["k1", "k3"])
      expect(two.sentAtOnce).toEqual([true, false])
      expect(yield* two.answers).toEqual(["v1", "v3"])
      expect((yield* mgets(server)) - before).toBe(2)

      // That tick held two calls (one sent at once, one at the tick's end): the next call waits for its tick.
      const afterTwo = yield* readInOneStep(["k2"])
      expect(afterTwo.sentAtOnce).toEqual([false])
      expect(yield* afterTwo.answers).toEqual(["v2"])

      // After a tick of several (three reads, one MGET), the next call waits for the tick too.
      expect(yield* together(["k1", "k2", "k3"].map((k) => redis.getBatched(k)))).toEqual(["v1", "v2", "v3"])
      const afterMany = yield* readInOneStep(["k1"])
      expect(afterMany.sentAtOnce).toEqual([false])
      expect(yield* afterMany.answers).toEqual(["v1"])

      // A tick of one (the one just above), but a batch still in flight (its reply held back in the kernel): the next
      // call waits for its tick.
      const held = yield* readInOneStep(["k2"])
      expect(held.sentAtOnce).toEqual([true])
      socket!.stream.pause()
      const meanwhile = yield* readInOneStep(["k3"])
      expect(meanwhile.sentAtOnce).toEqual([false])
      yield* Effect.sleep("20 millis")
      socket!.stream.resume()
      expect(yield* held.answers).toEqual(["v2"])
      expect(yield* meanwhile.answers).toEqual(["v3"])

      // Writes follow the same rule (their own batcher): a write alone, then one sent at once; the values land.
      yield* redis.setBatched("w1", "a", Option.none())
      const beforeWrite = written()
      const done = yield* Deferred.make<void, unknown>()
      yield* Effect.sync(() => redis.unsafeSetBatched!("w2", "b", Option.none(), (exit) => Deferred.unsafeDone(done, Exit.asVoid(exit))))
      expect(written()).toBeGreaterThan(beforeWrite)
      yield* Deferred.await(done)
      expect(yield* redis.mget(["w1", "w2"])).toEqual(["a", "b"])
    }))
})
