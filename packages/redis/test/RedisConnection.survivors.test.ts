/**
 * What mutation testing of `RedisConnection.make` (lines 417 on) found untested: `ready` while one socket of two is
 * down, while the Sentinel fence holds, on a socket that is closing, on a reconnect that hangs, and when the
 * connection closes under it; the listeners a wait leaves on a socket; the names of `ping`'s failure and of a
 * coalesced write's span. Every server is spawned for the test (or a chaos proxy in front of one).
 */
import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, LogCapture, RedisServer } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import type { Redis } from "ioredis"
import { createServer } from "node:net"
import * as RedisConfig from "../src/RedisConfig.js"
import * as RedisConnection from "../src/RedisConnection.js"

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const prefix = `steadfast:test:survivors:${process.pid}:${Math.random().toString(36).slice(2)}:`

const connect = (options: RedisConfig.Options) =>
  Effect.flatMap(Effect.orDie(RedisConfig.fromOptions(options)), RedisConnection.make)

/** A port nothing listens on: bind, read it, close. */
const deadPort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Polls until `check` holds, for at most `timeoutMs` of real time. */
const eventually = (check: () => boolean, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (check()) return true
      yield* Effect.sleep("10 millis")
    }
    return check()
  })

/** The connection's ioredis clients, as the socket watcher hands them out (all must be ready). */
const clientsOf = (redis: RedisConnection.RedisConnection) =>
  Effect.gen(function*() {
    const clients: Array<Redis> = []
    yield* redis.watchSockets!({ ready: (index, client) => void (clients[index] = client), closed: () => {} })
    return clients
  })

const events = ["ready", "error", "close", "end"] as const
const listeners = (client: Redis) => events.map((e) => `${e}=${client.listenerCount(e)}`).join(" ")

describe("RedisConnection.ready", () => {
  it.scopedLive("one socket of two cannot reconnect: ready succeeds at once on the other, availability is ready", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      const redis = yield* connect({ url: proxy.url(), maxConnections: 2, commandTimeout: "2 seconds" })
      const clients = yield* clientsOf(redis)
      expect(clients).toHaveLength(2)
      yield* proxy.setFault(ChaosProxy.Refuse())
      clients[1]!.stream.destroy()
      expect(yield* eventually(() => clients[1]!.status !== "ready", 2000)).toBe(true)
      // Socket 1 keeps failing to reconnect (refused); socket 0 is fine, so the connection is ready.
      yield* redis.ready
      expect(redis.availability()).toBe("ready")
      yield* redis.set(`${prefix}k`, "v", Option.none())
    }))

  it.scopedLive("a reconnect that hangs: ready fails at its deadline, a not-sent timeout naming the deadline", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      const redis = yield* connect({ url: proxy.url(), maxConnections: 1, commandTimeout: "1 second" })
      const [client] = yield* clientsOf(redis)
      // New connections are accepted by the proxy but never answered: the reconnect stays short of ready.
      yield* proxy.setFault(ChaosProxy.Stall())
      client!.stream.destroy()
      expect(yield* eventually(() => client!.status !== "ready", 2000)).toBe(true)
      const error = yield* Effect.flip(redis.ready)
      expect(error).toMatchObject({ _tag: "TransientError", operation: "ready", reason: "timeout", outcome: "not_sent" })
      expect(error.message).toBe("no socket ready within 1000 ms")
    }))

  it.scopedLive("a TLS reconnect whose handshake hangs (connecting): reconnecting, and ready waits for it", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ tls: true })
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      const redis = yield* connect({
        url: `rediss://127.0.0.1:${proxy.port}`,
        tlsCa: server.tls!.ca,
        maxConnections: 1,
        commandTimeout: "1 second",
        connectTimeout: "10 seconds"
      })
      const [client] = yield* clientsOf(redis)
      yield* proxy.setFault(ChaosProxy.Stall())
      client!.stream.destroy()
      expect(yield* eventually(() => client!.status === "connecting", 2000)).toBe(true)
      // The first reconnect is under way: not down.
      expect(redis.availability()).toBe("reconnecting")
      const error = yield* Effect.flip(redis.ready)
      expect(error).toMatchObject({ _tag: "TransientError", operation: "ready", reason: "timeout" })
      yield* proxy.setFault(ChaosProxy.PassThrough())
      yield* redis.ready
    }))

  it.scopedLive("a socket closing (its stream destroyed, close not yet handled): ready waits for the reconnect", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1, commandTimeout: "2 seconds" })
      const [client] = yield* clientsOf(redis)
      const before = listeners(client!)
      // The reset's own error is the old socket's, not the reconnect's: it does not fail the wait.
      yield* Effect.suspend(() => {
        client!.stream.destroy(new Error("test: the old socket's reset"))
        return redis.ready
      })
      expect(client!.status).toBe("ready")
      yield* redis.set(`${prefix}k`, "v", Option.none())
      expect(listeners(client!)).toBe(before)
    }))

  it.scopedLive("a socket closing whose reconnect is refused: ready fails with the refusal, not at its deadline", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      const redis = yield* connect({ url: proxy.url(), maxConnections: 1, commandTimeout: "3 seconds" })
      const [client] = yield* clientsOf(redis)
      yield* proxy.setFault(ChaosProxy.Refuse())
      const error = yield* Effect.flip(Effect.suspend(() => {
        client!.stream.destroy(new Error("test: the old socket's reset"))
        return redis.ready
      }))
      expect(error).toMatchObject({ _tag: "TransientError", operation: "ready", reason: "connection_refused" })
    }))

  it.scopedLive("a reconnect refused by the server (the password changed): ready fails with that error at once", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ password: "pw" })
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      const redis = yield* connect({ url: proxy.url("pw"), maxConnections: 1, commandTimeout: "2 seconds" })
      const [client] = yield* clientsOf(redis)
      // The reconnect's AUTH is held by the proxy while the password changes, then let through.
      yield* proxy.setFault(ChaosProxy.Stall())
      client!.stream.destroy()
      expect(yield* eventually(() => client!.status === "connect", 2000)).toBe(true)
      yield* server.command("CONFIG", "SET", "requirepass", "another")
      const waiting = yield* Effect.fork(Effect.flip(redis.ready))
      yield* Effect.sleep("50 millis")
      yield* proxy.setFault(ChaosProxy.PassThrough())
      const error = yield* Fiber.join(waiting)
      // Not the deadline's timeout: the next reconnect of a socket refused for its password is 5 s away.
      expect(error).toMatchObject({ _tag: "PermanentError", operation: "ready", reason: "auth" })
    }))

  it.scopedLive("waits leave no listeners behind, and each outage is waited for afresh", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      const redis = yield* connect({ url: proxy.url(), maxConnections: 1, commandTimeout: "3 seconds" })
      const [client] = yield* clientsOf(redis)
      const before = listeners(client!)
      for (let round = 0; round < 3; round++) {
        // A wait that ends with the socket ready: the reconnect is held by the proxy, then let through.
        yield* proxy.setFault(ChaosProxy.Stall())
        client!.stream.destroy()
        expect(yield* eventually(() => client!.status !== "ready", 2000)).toBe(true)
        const waiting = yield* Effect.fork(Effect.all([redis.ready, redis.ready, redis.ready], { concurrency: "unbounded" }))
        yield* Effect.sleep("50 millis")
        expect(yield* Fiber.poll(waiting)).toEqual(Option.none())
        yield* proxy.setFault(ChaosProxy.PassThrough())
        yield* Fiber.join(waiting)
        expect(listeners(client!)).toBe(before)
        // A wait that ends with an error: the server is gone, the reconnect is refused.
        yield* proxy.setFault(ChaosProxy.Refuse())
        client!.stream.destroy()
        expect(yield* eventually(() => client!.status !== "ready", 2000)).toBe(true)
        const refused = yield* Effect.flip(redis.ready)
        expect(refused).toMatchObject({ _tag: "TransientError", operation: "ready", reason: "connection_refused" })
        // Between two refused attempts (the socket waits for its next one), nothing of the wait is left on it.
        expect(yield* eventually(() => client!.status === "reconnecting", 2000)).toBe(true)
        expect(listeners(client!)).toBe(before)
        yield* proxy.setFault(ChaosProxy.PassThrough())
        expect(yield* eventually(() => client!.status === "ready", 3000)).toBe(true)
        expect(listeners(client!)).toBe(before)
      }
    }))

  it.scopedLive("a wait under way when the connection closes fails at once (the socket ended)", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      const scope = yield* Scope.make()
      const redis = yield* connect({ url: proxy.url(), maxConnections: 1, commandTimeout: "10 seconds" }).pipe(
        Scope.extend(scope)
      )
      const [client] = yield* clientsOf(redis).pipe(Scope.extend(scope))
      yield* proxy.setFault(ChaosProxy.Stall())
      client!.stream.destroy()
      expect(yield* eventually(() => client!.status !== "ready", 2000)).toBe(true)
      const waiting = yield* Effect.forkDaemon(Effect.flip(redis.ready))
      yield* Effect.sleep("50 millis")
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Fiber.await(waiting).pipe(Effect.timeout("3 seconds"), Effect.option)
      expect(Option.isSome(exit) && Exit.isSuccess(exit.value)).toBe(true)
      if (Option.isSome(exit) && Exit.isSuccess(exit.value)) {
        expect(exit.value.value).toMatchObject({ operation: "ready" })
        expect(exit.value.value.message).toContain("Connection is closed.")
      }
    }))
})

describe("RedisConnection: the Sentinel fence and ready", () => {
  it.scopedLive("while the primary is fenced, ready fails at once as not connected (no wait for a socket already ready)", () =>
    Effect.gen(function*() {
      const primary = yield* RedisServer.make()
      const sentinel = yield* RedisServer.make({
        sentinel: true,
        config: [`sentinel monitor m 127.0.0.1 ${primary.port} 1`, "sentinel down-after-milliseconds m 60000"]
      })
      const events = yield* RedisServer.make()
      const logs = LogCapture.make()
      const redis = yield* connect({
        url: `redis+sentinel://127.0.0.1:${sentinel.port},127.0.0.1:${events.port}/m`,
        maxConnections: 1,
        commandTimeout: "3 seconds",
        connectTimeout: "500 millis"
      }).pipe(Effect.provide(logs.layer))
      yield* redis.ready
      const fenced = () => logs.lines.some((l) => l.message === "redis primary fenced: a failover is under way (Sentinel)")
      for (let i = 0; i < 100 && !fenced(); i++) {
        yield* events.command("PUBLISH", "+selected-slave", `slave 127.0.0.1:1 127.0.0.1 1 @ m 127.0.0.1 ${primary.port}`)
        yield* Effect.sleep("20 millis")
      }
      expect(fenced()).toBe(true)
      const error = yield* Effect.flip(redis.ready)
      expect(error).toMatchObject({ _tag: "TransientError", operation: "ready", reason: "connection_unavailable" })
      expect(redis.availability()).toBe("down")
    }))
})

describe("RedisConnection: names", () => {
  it.scopedLive("a failed ping is named ping", () =>
    Effect.gen(function*() {
      const port = yield* deadPort
      const redis = yield* connect({ url: `redis://127.0.0.1:${port}`, connectTimeout: "300 millis" })
      const error = yield* Effect.flip(redis.ping)
      expect(error).toMatchObject({ _tag: "TransientError", operation: "ping" })
    }))

  it.live("a coalesced write is a redis.set span of MSET", () => {
    const spans: Array<{ name: string; attributes: Map<string, unknown> }> = []
    const tracer = Tracer.make({
      span: (name, parent, context, links, startTime, kind) => {
        const attributes = new Map<string, unknown>()
        spans.push({ name, attributes })
        return {
          _tag: "Span",
          name,
          spanId: String(spans.length),
          traceId: "trace",
          parent,
          context,
          status: { _tag: "Started", startTime },
          attributes,
          links,
          sampled: true,
          kind,
          end: () => {},
          attribute: (key, value) => void attributes.set(key, value),
          event: () => {},
          addLinks: () => {}
        }
      },
      context: (f) => f()
    })
    const layer = RedisConnection.layer({ url: REDIS_URL }).pipe(Layer.provide(Layer.setTracer(tracer)))
    return Effect.gen(function*() {
      const redis = yield* RedisConnection.RedisConnection
      yield* redis.setBatched(`${prefix}span`, "v", Option.none())
      expect(spans.map((s) => [s.name, s.attributes.get("db.operation.name")])).toEqual([["redis.set", "MSET"]])
      yield* redis.del([`${prefix}span`])
    }).pipe(Effect.provide(layer), Effect.withTracer(tracer))
  })
})
