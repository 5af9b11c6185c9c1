import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, LogCapture, RedisServer } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as RedisConnection from "../src/RedisConnection.js"

/** Polls until `check` holds, for at most `timeoutMs` of real time (real sockets need real time). */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (yield* Effect.orElseSucceed(check, () => false)) return true
      yield* Effect.sleep("50 millis")
    }
    return false
  })

/** A proxy in front of a server of its own (both closed with the test's scope). */
const proxied = Effect.flatMap(RedisServer.make(), (server) =>
  ChaosProxy.make({ upstream: { host: server.host, port: server.port } }))

const use = <A, E>(
  options: Parameters<typeof RedisConnection.layer>[0],
  f: (redis: RedisConnection.RedisConnection) => Effect.Effect<A, E>
) => Effect.flatMap(RedisConnection.RedisConnection, f).pipe(Effect.provide(RedisConnection.layer(options)))

describe("RedisConnection under faults", () => {
  it.live("rediss:// with a private CA: verified TLS works", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ tls: true })
      expect(server.url.startsWith("rediss://")).toBe(true)
      yield* use({ url: server.url, tlsCa: server.tls!.ca }, (redis) =>
        Effect.gen(function*() {
          yield* redis.set("tls-key", "over-tls", Option.none())
          expect(yield* redis.get("tls-key")).toBe("over-tls")
        }))
    }).pipe(Effect.scoped))

  it.live("rediss:// without trusting the CA: the layer builds, calls fail with PermanentError tls_certificate", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ tls: true })
      yield* use({ url: server.url, connectTimeout: "1 second" }, (redis) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(redis.get("k"))
          expect(error).toMatchObject({ _tag: "PermanentError", reason: "tls_certificate", operation: "get" })
        }))
    }).pipe(Effect.scoped))

  it.live("a stalled socket: the call fails at the deadline, the socket is replaced, service resumes", () => {
    const logs = LogCapture.make()
    return Effect.gen(function*() {
      const proxy = yield* proxied
      yield* use({ url: proxy.url(), commandTimeout: "300 millis" }, (redis) =>
        Effect.gen(function*() {
          yield* redis.set("k", "v", Option.none())
          yield* proxy.setFault(ChaosProxy.Stall())
          const started = performance.now()
          const error = yield* Effect.flip(redis.get("k"))
          const waited = performance.now() - started
          expect(error).toMatchObject({ _tag: "TransientError", reason: "timeout" })
          // Expired within [deadline - 2 ticks, deadline - tick]: the tick is 300 / 20 = 15 ms.
          expect(waited).toBeGreaterThanOrEqual(269)
          expect(waited).toBeLessThan(300)
          // Still silent past the socket timeout (deadline + 1/4): the socket is destroyed and reconnects.
          yield* Effect.sleep("200 millis")
          yield* proxy.setFault(ChaosProxy.PassThrough())
          expect(yield* eventually(Effect.map(redis.get("k"), (v) => v === "v"), 5000)).toBe(true)
          // The silence watch destroyed the stalled socket: the proxy saw a second connection, and the connection
          // logged why (ioredis' own socket-timeout error, classified as such).
          expect((yield* proxy.stats).accepted).toBeGreaterThanOrEqual(2)
          const dropped = logs.lines.filter((l) => l.message === "redis connection error")
          expect(dropped.map((l) => l.annotations["error_type"])).toContain("socket_timeout")
          expect(dropped.map((l) => String(l.annotations["error_message"]))).toContain(
            "Socket timeout. Expecting data, but didn't receive any in 375ms."
          )
        }))
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  })

  // The silence watch (internal/silence.ts) replaces ioredis' socketTimeout for standalone and Sentinel sockets.
  it.live("silence: an idle socket is not replaced, however long nothing arrives (only one with replies outstanding)", () =>
    Effect.gen(function*() {
      const proxy = yield* proxied
      // Silence limit 150 ms; idle four times that.
      yield* use({ url: proxy.url(), commandTimeout: "100 millis" }, (redis) =>
        Effect.gen(function*() {
          yield* redis.set("k", "v", Option.none())
          yield* Effect.sleep("600 millis")
          expect(yield* redis.get("k")).toBe("v")
          expect((yield* proxy.stats).accepted).toBe(1)
        }))
    }).pipe(Effect.scoped))

  it.live("silence: a socket that answers slowly but steadily is kept: silence counts from the last bytes received", () =>
    Effect.gen(function*() {
      const proxy = yield* proxied
      // Silence limit 375 ms. Every reply is 100 ms late and four callers keep replies outstanding without a break for
      // 1.2 s: the socket is waiting the whole time, and bytes arrive every ~25 ms.
      yield* use({ url: proxy.url(), commandTimeout: "300 millis" }, (redis) =>
        Effect.gen(function*() {
          yield* redis.set("k", "v", Option.none())
          yield* proxy.setFault(ChaosProxy.Latency({ upstream: 0, downstream: "100 millis" }))
          const until = performance.now() + 1200
          const caller = (delay: number) =>
            Effect.gen(function*() {
              yield* Effect.sleep(Duration.millis(delay))
              let ok = 0
              while (performance.now() < until) {
                if ((yield* Effect.either(redis.get("k")))._tag === "Right") ok++
              }
              return ok
            })
          const answered = yield* Effect.all([0, 25, 50, 75].map(caller), { concurrency: "unbounded" })
          expect(answered.every((n) => n >= 5)).toBe(true)
          expect((yield* proxy.stats).accepted).toBe(1)
        }))
    }).pipe(Effect.scoped))

  it.live("silence: the limit follows setCommandTimeout (a stall is replaced after the new deadline + 1/4, not the old)", () =>
    Effect.gen(function*() {
      const proxy = yield* proxied
      // Built with a 5 s deadline (silence limit 6.25 s), then retuned to 100 ms (limit 150 ms).
      yield* use({ url: proxy.url(), commandTimeout: "5 seconds" }, (redis) =>
        Effect.gen(function*() {
          yield* redis.set("k", "v", Option.none())
          yield* redis.setCommandTimeout("100 millis")
          yield* proxy.setFault(ChaosProxy.Stall())
          const error = yield* Effect.flip(redis.get("k"))
          expect(error).toMatchObject({ _tag: "TransientError", reason: "timeout" })
          // Replaced within ~150 ms + 2 ticks of the stall; 1.5 s is far below the old limit.
          expect(yield* eventually(Effect.map(proxy.stats, (s) => s.accepted >= 2), 1500)).toBe(true)
          yield* proxy.setFault(ChaosProxy.PassThrough())
          expect(yield* eventually(Effect.map(redis.get("k"), (v) => v === "v"), 5000)).toBe(true)
        }))
    }).pipe(Effect.scoped))

  it.live("the health check PINGs an idle socket, finds it dead (blackholed) and reconnects it before any user call", () =>
    Effect.gen(function*() {
      const proxy = yield* proxied
      const failuresBefore = (yield* Metric.value(RedisConnection.healthCheckFailures)).count
      yield* use(
        { url: proxy.url(), commandTimeout: "200 millis", healthCheckInterval: "300 millis" },
        (redis) =>
          Effect.gen(function*() {
            expect(yield* redis.status).toEqual(["ready"])
            yield* proxy.setFault(ChaosProxy.Stall())
            // No user call is made: only the health check can notice.
            const noticed = yield* eventually(
              Effect.map(Metric.value(RedisConnection.healthCheckFailures), (c) => c.count > failuresBefore),
              3000
            )
            expect(noticed).toBe(true)
            yield* proxy.setFault(ChaosProxy.PassThrough())
            expect(yield* eventually(Effect.map(redis.status, (s) => s[0] === "ready"), 5000)).toBe(true)
            expect(yield* redis.get("absent")).toBeNull()
          })
      )
    }).pipe(Effect.scoped))

  it.live("heals by itself when the server comes back", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      yield* use({ url: server.url }, (redis) =>
        Effect.gen(function*() {
          yield* redis.set("k", "v", Option.none())
          yield* server.stop
          const error = yield* Effect.flip(redis.get("k"))
          expect(error._tag).toBe("TransientError")
          yield* server.start
          // The server restarted empty (no persistence); a PING answered means the socket is back.
          expect(yield* eventually(Effect.as(redis.ping, true), 5000)).toBe(true)
        }))
    }).pipe(Effect.scoped))

  it.live("an INCR whose reply is lost is not re-sent after the reconnect", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      yield* use({ url: proxy.url(), commandTimeout: "2 seconds" }, (redis) =>
        Effect.gen(function*() {
          yield* redis.del(["counter"])
          // Replies are held back 500 ms: the INCR reaches Redis, its reply is still in the proxy when we reset.
          yield* proxy.setFault(ChaosProxy.Latency({ upstream: 0, downstream: "500 millis" }))
          const incr = yield* Effect.fork(Effect.either(redis.execute("incr", (c) => c.incr("counter"))))
          yield* Effect.sleep("200 millis")
          yield* proxy.setFault(ChaosProxy.PassThrough())
          yield* proxy.resetConnections
          const result = yield* incr.await
          expect(result._tag).toBe("Success")
          if (result._tag === "Success") expect(result.value._tag).toBe("Left")
          expect(yield* eventually(Effect.as(redis.ping, true), 5000)).toBe(true)
          // Executed exactly once by the server, never replayed by the client.
          yield* Effect.sleep("300 millis")
          const value = yield* server.command("GET", "counter")
          expect(value).toBe("1")
        }))
    }).pipe(Effect.scoped))
})

