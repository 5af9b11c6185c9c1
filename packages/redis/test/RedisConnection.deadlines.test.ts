/**
 * The command deadline on Effect's clock, driven by `TestClock` against a stalled socket: a call fails at the first
 * sweep after `timeout - 2 ticks` (a tick is a twentieth of the timeout, at most 100 ms), never earlier, with a message
 * naming the operation and the deadline; coalesced calls share one deadline.
 */
import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as RedisConfig from "../src/RedisConfig.js"
import * as RedisConnection from "../src/RedisConnection.js"

/** Real time, for the sockets (TestClock only moves Effect's clock). */
const realSleep = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

const stalled = (commandTimeout: Duration.DurationInput) =>
  Effect.gen(function*() {
    const server = yield* RedisServer.make()
    const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
    const config = yield* Effect.orDie(RedisConfig.fromOptions({ url: proxy.url(), maxConnections: 1, commandTimeout }))
    const redis = yield* RedisConnection.make(config)
    yield* redis.ready
    yield* proxy.setFault(ChaosProxy.Stall())
    return redis
  })

/** Forks `call`, lets it reach the socket, then moves the clock `steps` and reports when it failed. */
const failsAt = <A, E>(call: Effect.Effect<A, E>, steps: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.flip(call))
    yield* realSleep(30)
    let at = 0
    for (const step of steps) {
      yield* TestClock.adjust(`${step} millis`)
      at += step
      yield* realSleep(5)
      const done = yield* Fiber.poll(fiber)
      if (Option.isSome(done)) return { at, error: yield* Fiber.join(fiber) }
    }
    yield* Fiber.interrupt(fiber)
    return { at: -1, error: undefined }
  })

const ticks = (tick: number, count: number) => Array.from({ length: count }, () => tick)

describe("RedisConnection deadlines (TestClock)", () => {
  it.scoped("1 s: ticks of 50 ms, the call fails at 900 ms (timeout - 2 ticks), not before", () =>
    Effect.gen(function*() {
      const redis = yield* stalled("1000 millis")
      const { at, error } = yield* failsAt(redis.get("k"), ticks(50, 30))
      expect(at).toBe(900)
      expect(error).toMatchObject({
        _tag: "TransientError",
        operation: "get",
        reason: "timeout",
        outcome: "unknown",
        message: "get exceeded its 1000 ms deadline"
      })
    }))

  it.scoped("4 s: ticks are capped at 100 ms, the call fails at 3800 ms", () =>
    Effect.gen(function*() {
      const redis = yield* stalled("4000 millis")
      const { at } = yield* failsAt(redis.set("k", "v", Option.none()), ticks(100, 45))
      expect(at).toBe(3800)
    }))

  it.scoped("coalesced reads and writes fail at the same deadline, named get and set", () =>
    Effect.gen(function*() {
      const redis = yield* stalled("1000 millis")
      const read = yield* failsAt(redis.getBatched("k"), ticks(50, 30))
      expect(read.at).toBe(900)
      expect(read.error).toMatchObject({
        _tag: "TransientError",
        operation: "get",
        reason: "timeout",
        outcome: "unknown",
        message: "get exceeded its 1000 ms deadline"
      })
      const write = yield* failsAt(redis.setBatched("k", "v", Option.none()), ticks(50, 30))
      expect(write.at).toBe(900)
      expect(write.error).toMatchObject({ operation: "set", reason: "timeout", message: "set exceeded its 1000 ms deadline" })
    }))
})
