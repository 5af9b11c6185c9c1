/**
 * Regression test for a bug the matrix's resource check found: closing the connection layer left a ref'd 2 s timer.
 *
 * RedisConnection's release QUITs the socket, waits for `end`, then (in `Effect.ensuring`) calls
 * `client.disconnect(false)` anyway. ioredis' `AbstractConnector.disconnect` arms `setTimeout(destroy,
 * disconnectTimeout = 2000)`, cleared only by the stream's `close` event, which already fired: the timer stays for
 * 2 s (when the socket was never ready, `disconnect` runs twice: two timers). It keeps the event loop alive, so a
 * process that closes its layer to exit waits 2 s more.
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisConnection } from "@steadfast/redis"
import { RedisServer } from "@steadfast/testing"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { quietResources, settleResources } from "./support/harness.js"

describe("chaos: closing the connection scope", () => {
  it.live("leaves no timer behind once sockets are closed (500 ms settle)", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const before = yield* quietResources
      yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(RedisConnection.layer({ url: server.url }))
        const redis = Context.get(context, RedisConnection.RedisConnection)
        yield* redis.set("k", "v", Option.none())
        expect(yield* redis.get("k")).toBe("v")
      }))
      // A socket's close callback takes a few ms: 500 ms is plenty for anything but a stray timer.
      const { leftover } = yield* settleResources(before, 500).pipe(
        // Whatever the outcome, let the stray timer expire before the next test takes its own snapshot.
        Effect.ensuring(settleResources(before))
      )
      expect(leftover).toEqual({})
    }).pipe(Effect.scoped))
})
