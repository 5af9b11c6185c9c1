/**
 * `setCommandTimeout` on a live connection to the shared Redis: the next calls get the new deadline (a BLPOP that
 * blocks only this connection's socket stands for a slow reply), the socket's silence timeout follows, and an
 * invalid value is a typed error that changes nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as RedisConnection from "../src/RedisConnection.js"

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

describe("RedisConnection.setCommandTimeout", () => {
  it.live("the next calls get the new deadline; the socket timeout follows; an invalid value changes nothing", () =>
    Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      const key = `steadfast:test:tuning:${process.pid}:${Date.now()}`
      expect(Duration.toMillis(redis.commandTimeout())).toBe(2000)
      const clientId = redis.execute("client", (c) => c.client("ID"))
      const before = yield* clientId
      yield* redis.setCommandTimeout("150 millis")
      expect(Duration.toMillis(redis.commandTimeout())).toBe(150)
      const started = Date.now()
      // Blocks for 1 s on the server (this socket only): the call fails at its 150 ms deadline.
      const error = yield* Effect.flip(redis.execute("blpop", (c) => c.blpop(key, 1)))
      const took = Date.now() - started
      expect(error._tag === "TransientError" && error.reason).toBe("timeout")
      expect(error.message).toContain("150 ms")
      expect(took).toBeGreaterThanOrEqual(120)
      expect(took).toBeLessThan(900)
      // The silence timeout followed (deadline + 50 ms = 200 ms, not 2.5 s): the socket still waiting for the BLPOP's
      // reply was replaced, so the next command runs on a new connection.
      yield* Effect.sleep("400 millis")
      yield* redis.ready
      expect(yield* clientId).not.toBe(before)
      const failed = yield* Effect.flip(redis.setCommandTimeout("0 millis"))
      expect(failed._op).toBe("InvalidData")
      expect(String(failed)).toContain("commandTimeout must be a positive, finite duration")
      expect(Duration.toMillis(redis.commandTimeout())).toBe(150)
      // Back to 2 s: the same BLPOP (1 s) now answers (nil) instead of timing out.
      yield* redis.setCommandTimeout("2 seconds")
      expect(yield* redis.execute("blpop", (c) => c.blpop(key, 1))).toBeNull()
    }).pipe(Effect.provide(RedisConnection.layer({ url: REDIS_URL })), Effect.scoped), 10_000)
})
