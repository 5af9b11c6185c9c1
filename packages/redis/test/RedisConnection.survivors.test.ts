/**
 * What mutation testing of `RedisConnection.make` (lines 417 on) found untested: `ready` while one socket of two is
 * down, while the Sentinel fence holds, on a socket that is closing, on a reconnect that hangs, and when the
 * connection closes under it; the listeners a wait leaves on a socket; the names of `ping`'s failure and of a
 * coalesced write's span. Every server is spawned for the test (or a chaos proxy in front of one).
 */
import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, LogCapture, RedisServer } from "@steadfast/testing"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
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
      clients[0]!.stream.destroy()
      expect(yield* eventually(() => clients[0]!.status !== "ready", 2000)).toBe(true)
      // Socket 0 keeps failing to reconnect (refused); socket 1 is fine, so the connection is ready.
      yield* redis.ready
      expect(redis.availability()).toBe("ready")
      // A watcher added now hears of socket 1 only.
      const seen: Array<number> = []
      yield* redis.watchSockets!({ ready: (index) => void seen.push(index), closed: () => {} })
      expect(seen).toEqual([1])
      // Every call goes to socket 1, whichever socket the round robin is at.
      for (let i = 0; i < 4; i++) yield* redis.set(`${prefix}k${i}`, "v", Option.none())
      expect(yield* redis.mget([0, 1, 2, 3].map((i) => `${prefix}k${i}`))).toEqual(["v", "v", "v", "v"])
    }))

  it.scopedLive("nothing listens, two sockets: every call fails as not sent (the socket is not writeable)", () =>
    Effect.gen(function*() {
      const port = yield* deadPort
      const redis = yield* connect({ url: `redis://127.0.0.1:${port}`, maxConnections: 2, connectTimeout: "300 millis" })
      for (let i = 0; i < 4; i++) {
        const error = yield* Effect.flip(redis.get(`${prefix}k`))
        expect(error).toMatchObject({ _tag: "TransientError", operation: "get", reason: "connection_unavailable" })
      }
    }))

  it.scopedLive("the sockets connect at the same time: a server that never answers costs one connect timeout, not one each", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      yield* proxy.setFault(ChaosProxy.Stall())
      const building = yield* Effect.forkScoped(connect({ url: proxy.url(), maxConnections: 4, connectTimeout: "5 seconds" }))
      // All four are accepted long before the first connect times out (5 s).
      const accepted = () => Effect.runSync(Effect.map(proxy.stats, (s) => s.accepted))
      expect(yield* eventually(() => accepted() === 4, 2000)).toBe(true)
      yield* proxy.setFault(ChaosProxy.PassThrough())
      const redis = yield* Fiber.join(building)
      yield* redis.ready
    }))

  it.scopedLive("a reconnect that hangs: ready fails at its deadline, a not-sent timeout naming the deadline", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      // The deadline (2 s) comes well before the reconnect's own socket timeout (2.5 s after its first command).
      const redis = yield* connect({ url: proxy.url(), maxConnections: 1, commandTimeout: "2 seconds" })
      const [client] = yield* clientsOf(redis)
      // New connections are accepted by the proxy but never answered: the reconnect stays short of ready.
      yield* proxy.setFault(ChaosProxy.Stall())
      client!.stream.destroy()
      expect(yield* eventually(() => client!.status !== "ready", 2000)).toBe(true)
      const error = yield* Effect.flip(redis.ready)
      expect(error).toMatchObject({ _tag: "TransientError", operation: "ready", reason: "timeout", outcome: "not_sent" })
      expect(error.message).toBe("no socket ready within 2000 ms")
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

describe("RedisConnection: the Sentinel fence, event by event", () => {
  /** One real sentinel monitoring one primary; `events` is a plain server listed as a sentinel, to PUBLISH on. */
  const setup = (extraSentinels: ReadonlyArray<number> = []) =>
    Effect.gen(function*() {
      const primary = yield* RedisServer.make()
      const sentinel = yield* RedisServer.make({
        sentinel: true,
        config: [`sentinel monitor m 127.0.0.1 ${primary.port} 1`, "sentinel down-after-milliseconds m 60000"]
      })
      const events = yield* RedisServer.make()
      const logs = LogCapture.make()
      const scope = yield* Scope.make()
      const sentinels = [sentinel.port, ...extraSentinels, events.port].map((port) => `127.0.0.1:${port}`).join(",")
      const redis = yield* connect({
        url: `redis+sentinel://${sentinels}/m`,
        maxConnections: 1,
        commandTimeout: "500 millis",
        connectTimeout: "500 millis"
      }).pipe(Effect.provide(logs.layer), Scope.extend(scope))
      yield* redis.ready
      const logged = (message: string) => logs.lines.filter((l) => l.message === message)
      const fencedLogs = () => logged("redis primary fenced: a failover is under way (Sentinel)")
      // Our subscription (a pattern) is made in the background.
      for (let i = 0; i < 100 && Number(yield* events.command("PUBSUB", "NUMPAT")) === 0; i++) yield* Effect.sleep("20 millis")
      expect(Number(yield* events.command("PUBSUB", "NUMPAT"))).toBe(1)
      const publish = (channel: string, message: string) => events.command("PUBLISH", channel, message)
      /** Publishes, then lets the event reach the connection (a round trip on the same server after it). */
      const announce = (channel: string, message: string) =>
        Effect.zipRight(publish(channel, message), Effect.sleep("100 millis"))
      const at = (port: number) => `slave 127.0.0.1:1 127.0.0.1 1 @ m 127.0.0.1 ${port}`
      return { primary, events, redis, logs, logged, fencedLogs, publish, announce, at, scope }
    })

  it.scopedLive("the fence's logs are info; events that are no failover step, or malformed, fence nothing", () =>
    Effect.gen(function*() {
      const { announce, at, fencedLogs, logged, primary, redis } = yield* setup()
      yield* announce("+sdown", `master m 127.0.0.1 ${primary.port}`)
      yield* announce("+odown", `master m 127.0.0.1 ${primary.port} #quorum 1/1`)
      yield* announce("+selected-slave", `slave m 127.0.0.1 ${primary.port}`)
      expect(fencedLogs()).toHaveLength(0)
      yield* redis.set(`${prefix}k`, "v", Option.none())
      yield* announce("+selected-slave", at(primary.port))
      expect(fencedLogs()).toMatchObject([{ level: "INFO" }])
      yield* announce("-failover-abort-not-elected", `master m 127.0.0.1 ${primary.port}`)
      expect(logged("redis primary fence lifted")).toMatchObject([{ level: "INFO" }])
      yield* announce("+switch-master", `m 127.0.0.1 ${primary.port} 127.0.0.1 1`)
      expect(logged("redis primary switched (Sentinel)")).toMatchObject([{ level: "INFO" }])
    }))

  it.scopedLive("each failover step fences once; an abort naming another primary, or after the switch, lifts nothing", () =>
    Effect.gen(function*() {
      const { announce, at, fencedLogs, logged, primary, redis } = yield* setup()
      for (const step of ["+failover-state-send-slaveof-noone", "+promoted-slave"]) {
        const fenced = fencedLogs().length
        const lifted = logged("redis primary fence lifted").length
        yield* announce(step, at(primary.port))
        expect(fencedLogs().slice(fenced).map((l) => l.annotations["event"])).toEqual([step])
        // The next steps of the same failover do not fence again.
        yield* announce("+selected-slave", at(primary.port))
        yield* announce("+promoted-slave", at(primary.port))
        expect(fencedLogs()).toHaveLength(fenced + 1)
        expect(yield* Effect.flip(redis.set(`${prefix}k`, "w", Option.none()))).toMatchObject({ outcome: "not_sent" })
        // An abort of another primary's failover leaves ours fenced.
        yield* announce("-failover-abort-not-elected", "master m 127.0.0.1 1")
        expect(logged("redis primary fence lifted")).toHaveLength(lifted)
        yield* announce("-failover-abort-no-good-slave", `master m 127.0.0.1 ${primary.port}`)
        expect(logged("redis primary fence lifted")).toHaveLength(lifted + 1)
        yield* redis.set(`${prefix}k`, "w", Option.none())
      }
      // A failover of another primary (same name, another address) fences that one: ours still takes writes.
      const before = fencedLogs().length
      yield* announce("+selected-slave", at(primary.port))
      yield* announce("+selected-slave", at(1))
      yield* announce("+selected-slave", at(primary.port))
      yield* announce("+selected-slave", `slave 127.0.0.1:1 127.0.0.1 1 @ m 10.0.0.9 ${primary.port}`)
      expect(fencedLogs().slice(before).map((l) => l.annotations["primary"])).toEqual([
        `127.0.0.1:${primary.port}`,
        "127.0.0.1:1",
        `127.0.0.1:${primary.port}`,
        `10.0.0.9:${primary.port}`
      ])
      yield* redis.set(`${prefix}k`, "x", Option.none())
      // After the switch, an abort does not lift the fence of the demoted primary.
      const lifted = logged("redis primary fence lifted").length
      yield* announce("+switch-master", `m 127.0.0.1 ${primary.port} 127.0.0.1 1`)
      yield* announce("-failover-abort-not-elected", `master m 127.0.0.1 ${primary.port}`)
      expect(logged("redis primary fence lifted")).toHaveLength(lifted)
      expect(Exit.isFailure(yield* Effect.exit(redis.set(`${prefix}k`, "lost", Option.none())))).toBe(true)
      expect(String(yield* primary.command("GET", `${prefix}k`))).toBe("x")
    }))

  it.scopedLive("closing the connection unsubscribes from the sentinels for good", () =>
    Effect.gen(function*() {
      const { events, scope } = yield* setup()
      yield* Scope.close(scope, Exit.void)
      yield* Effect.sleep("500 millis")
      expect(Number(yield* events.command("PUBSUB", "NUMPAT"))).toBe(0)
    }))

  it.scopedLive("a switch only our subscription hears (ioredis' detector listens to 10 sentinels) drops the socket", () =>
    Effect.gen(function*() {
      // Nine more sentinels that are not there, before the one we publish on: it is the eleventh.
      const dead: Array<number> = []
      for (let i = 0; i < 9; i++) dead.push(yield* deadPort)
      const { announce, logged, primary, redis } = yield* setup(dead)
      let closed = 0
      yield* redis.watchSockets!({ ready: () => {}, closed: () => void closed++ })
      // A switch of another primary leaves our socket alone.
      yield* announce("+switch-master", "m 127.0.0.1 1 127.0.0.1 2")
      yield* Effect.sleep("200 millis")
      expect(closed).toBe(0)
      yield* announce("+switch-master", `m 127.0.0.1 ${primary.port} 127.0.0.1 1`)
      expect(logged("redis primary switched (Sentinel)")).toHaveLength(2)
      expect(closed).toBeGreaterThan(0)
      expect(yield* eventually(() => logged("redis socket reached the demoted primary; reconnecting").length > 0, 3000))
        .toBe(true)
    }))
})

describe("RedisConnection: the health check and the rest", () => {
  it.scopedLive("an idle socket that stops answering: the warning names the check and its deadline; availability is down at once", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      const logs = LogCapture.make()
      const redis = yield* connect({
        url: proxy.url(),
        maxConnections: 1,
        commandTimeout: "200 millis",
        healthCheckInterval: "300 millis"
      }).pipe(Effect.provide(logs.layer))
      yield* redis.ready
      yield* proxy.setFault(ChaosProxy.Stall())
      const warned = () => logs.lines.filter((l) => l.message === "idle redis socket failed its health check; reconnecting")
      expect(yield* eventually(() => warned().length > 0, 3000)).toBe(true)
      // Once its close is handled: its peer went silent, a reconnect is not worth waiting for.
      const closed = () => !["ready", "close"].includes(Effect.runSync(redis.status)[0]!)
      expect(yield* eventually(closed, 2000)).toBe(true)
      expect(redis.availability()).toBe("down")
      expect(warned()[0]).toMatchObject({
        level: "WARN",
        annotations: { socket: 0, error_type: "timeout", error_message: "health_check exceeded its 200 ms deadline" }
      })
    }))

  it.scopedLive("a health check refused by the server (PING not allowed) replaces the socket", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ users: [{ username: "app", password: "pw", rules: "on >pw ~* &* +@all -ping" }] })
      // `command` opens a connection of its own each time.
      const accepted = Effect.map(server.command("INFO", "stats"), (info) =>
        Number(/total_connections_received:(\d+)/.exec(String(info))![1]))
      const logs = LogCapture.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1, healthCheckInterval: "300 millis" }).pipe(
        Effect.provide(logs.layer)
      )
      yield* redis.ready
      const before = yield* accepted
      const warned = () => logs.lines.filter((l) => l.message === "idle redis socket failed its health check; reconnecting")
      expect(yield* eventually(() => warned().length > 0, 3000)).toBe(true)
      expect(warned()[0]!.annotations).toMatchObject({ error_type: "no_permission" })
      yield* redis.ready
      // One more connection than the INFO's own: the socket was reconnected.
      expect((yield* accepted) - before).toBeGreaterThanOrEqual(2)
    }))

  it.scopedLive("a socket that is down is not health-checked", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const logs = LogCapture.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1, healthCheckInterval: "200 millis" }).pipe(
        Effect.provide(logs.layer)
      )
      yield* redis.ready
      yield* server.stop
      yield* Effect.sleep("1 second")
      expect(logs.lines.filter((l) => l.message === "idle redis socket failed its health check; reconnecting")).toEqual([])
    }))

  it.scopedLive("an idle socket is pinged once per interval, not at every check (every half interval)", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const pings = Effect.map(server.command("INFO", "commandstats"), (reply) => {
        const match = /cmdstat_ping:calls=(\d+)/.exec(String(reply))
        return match === null ? 0 : Number(match[1])
      })
      const redis = yield* connect({ url: server.url, maxConnections: 1, healthCheckInterval: "300 millis" })
      yield* redis.ready
      const started = Date.now()
      const before = yield* pings
      yield* Effect.sleep("2100 millis")
      const count = (yield* pings) - before
      // Two PINGs of one socket are at least an interval apart (the PING itself counts as use).
      expect(count).toBeGreaterThan(0)
      expect(count).toBeLessThanOrEqual(Math.floor((Date.now() - started) / 300) + 1)
    }))

  it.scopedLive("mset of nothing, without a TTL: sends nothing and succeeds", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1 })
      yield* redis.mset([], Option.none())
      expect(String(yield* server.command("INFO", "commandstats"))).not.toContain("cmdstat_mset")
    }))

  it.scopedLive("layerConfig reads REDIS_URL from the ConfigProvider", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const port = yield* Effect.provide(
        Effect.flatMap(RedisConnection.RedisConnection, (redis) => Effect.as(redis.ping, redis.server.port)),
        RedisConnection.layerConfig()
      ).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["REDIS_URL", server.url]]))))
      expect(port).toBe(server.port)
    }))
})

describe("RedisConnection: names", () => {
  it("the service is named by its key: a program without the layer says which one is missing", () => {
    // As a program that forgot to provide the layer (which the type checker would refuse) runs.
    const exit = Effect.runSyncExit(RedisConnection.RedisConnection as unknown as Effect.Effect<unknown>)
    expect(Exit.isFailure(exit) && String(exit.cause)).toContain("@steadfast/redis/RedisConnection")
  })

  it("cluster reads go where scaleReads says: master, slave (replica) or all", () => {
    const scaleReads = (value: "master" | "replica" | "all") => {
      const config = Either.getOrThrow(RedisConfig.fromOptions({ url: "redis+cluster://n1", scaleReads: value }))
      const url = Either.getOrThrow(RedisConfig.parseUrl(config.url))
      if (url.topology !== "cluster") throw new Error("not cluster")
      return RedisConnection.clusterOptions(config, url).scaleReads
    }
    expect([scaleReads("master"), scaleReads("replica"), scaleReads("all")]).toEqual(["master", "slave", "all"])
  })

  it.scopedLive("a failed ping is named ping", () =>
    Effect.gen(function*() {
      const port = yield* deadPort
      const redis = yield* connect({ url: `redis://127.0.0.1:${port}`, connectTimeout: "300 millis" })
      const error = yield* Effect.flip(redis.ping)
      expect(error).toMatchObject({ _tag: "TransientError", operation: "ping" })
      expect(yield* Effect.flip(redis.mget(["a", "b"]))).toMatchObject({ _tag: "TransientError", operation: "mget" })
      expect(yield* Effect.flip(redis.scan("0", "*", 10))).toMatchObject({ _tag: "TransientError", operation: "scan" })
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
