/**
 * What a user of `RedisConnection` sees beyond the round trips of RedisConnection.test.ts: availability and `ready`
 * while up, down or misconfigured, a wrong password reported as permanent, per-key write failures, SCAN, the socket
 * watcher, the coalescing bound, the health check's choice of sockets, and the connection's logs.
 */
import { describe, expect, it } from "@effect/vitest"
import { LogCapture, RedisServer } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { createServer } from "node:net"
import * as RedisConfig from "../src/RedisConfig.js"
import * as RedisConnection from "../src/RedisConnection.js"

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const prefix = `steadfast:test:behaviour:${process.pid}:${Math.random().toString(36).slice(2)}:`

const connect = (options: RedisConfig.Options) =>
  Effect.flatMap(
    Effect.orDie(RedisConfig.fromOptions(options)),
    RedisConnection.make
  )

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
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (yield* Effect.orElseSucceed(check, () => false)) return true
      yield* Effect.sleep("20 millis")
    }
    return false
  })

const commandCalls = (server: RedisServer.RedisServer, command: string) =>
  Effect.map(server.command("INFO", "commandstats"), (reply) => {
    const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(reply))
    return match === null ? 0 : Number(match[1])
  })

describe("RedisConnection: availability and ready", () => {
  it.scopedLive("connected: ready at once, availability ready, PING answers", () =>
    Effect.gen(function*() {
      const redis = yield* connect({ url: REDIS_URL, maxConnections: 2 })
      expect(redis.availability()).toBe("ready")
      yield* redis.ready
      yield* redis.ping
      expect(redis.server).toEqual({ host: "127.0.0.1", port: 6379, tls: false })
    }))

  it.scopedLive("nothing listens: availability is down after the first reconnect, ready fails at once with the refusal", () =>
    Effect.gen(function*() {
      const port = yield* deadPort
      const logs = LogCapture.make()
      const redis = yield* connect({ url: `redis://127.0.0.1:${port}`, connectTimeout: "300 millis", commandTimeout: "2 seconds" })
        .pipe(Effect.provide(logs.layer))
      // Building did not fail: it said so, once per socket.
      expect(logs.lines.filter((l) => l.message === "redis unavailable at start-up; the connection heals in the background"))
        .toMatchObject([{ level: "WARN", annotations: { socket: 0 } }])
      expect(yield* eventually(Effect.sync(() => redis.availability() === "down"), 2000)).toBe(true)
      const started = performance.now()
      const error = yield* Effect.flip(redis.ready)
      expect(performance.now() - started).toBeLessThan(1000)
      expect(error).toMatchObject({ _tag: "TransientError", operation: "ready", reason: "connection_refused" })
      const get = yield* Effect.flip(redis.get("k"))
      expect(get).toMatchObject({ _tag: "TransientError", operation: "get" })
    }))

  it.scopedLive("a socket reset by its peer is reconnecting, and ready waits for it", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1 })
      yield* redis.set("k", "v", Option.none())
      yield* server.command("CLIENT", "KILL", "TYPE", "normal")
      // Once the client has seen the reset, the one socket is not usable: it is reconnecting (its peer reset it, it is
      // usually back at once), and ready waits for the reconnect instead of failing.
      // (Polled at every turn of the event loop: the reconnect is made within 20 ms.)
      const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      let seen = redis.availability()
      for (let i = 0; i < 100_000 && seen === "ready"; i++) seen = yield* Effect.zipRight(turn, Effect.sync(() => redis.availability()))
      expect(seen).toBe("reconnecting")
      yield* redis.ready
      expect(redis.availability()).toBe("ready")
      expect(yield* redis.get("k")).toBe("v")
    }))
})

describe("RedisConnection: a wrong password is permanent", () => {
  it.scopedLive("commands fail with PermanentError auth, naming the connect failure, never the password", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ password: "right-password" })
      const logs = LogCapture.make()
      const url = `redis://:wrong-password@${server.host}:${server.port}`
      const redis = yield* connect({ url, connectTimeout: "500 millis" }).pipe(Effect.provide(logs.layer))
      yield* eventually(Effect.sync(() => logs.lines.some((l) => l.level === "ERROR")), 2000)
      const error = yield* Effect.flip(redis.get("k"))
      expect(error).toMatchObject({ _tag: "PermanentError", reason: "auth", operation: "get" })
      expect(error.message.startsWith("not connected: ")).toBe(true)
      expect(error.message).not.toContain("wrong-password")
      // Not about to be ready: fail fast.
      expect(redis.availability()).toBe("down")
      // Logged as an error (a misconfiguration), once; the retries that follow are debug.
      const connectionErrors = logs.lines.filter((l) => l.message === "redis connection error")
      expect(connectionErrors[0]).toMatchObject({ level: "ERROR", annotations: { error_type: "auth", socket: 0 } })
      expect(logs.lines.map((l) => l.line).join("\n")).not.toContain("wrong-password")
      // A wrong password is retried slowly (every 5 s), not at the backoff of a lost server.
      const accepted = () =>
        Effect.map(server.command("INFO", "stats"), (info) => Number(/total_connections_received:(\d+)/.exec(String(info))![1]))
      const before = yield* accepted()
      yield* Effect.sleep("1500 millis")
      expect((yield* accepted()) - before).toBeLessThanOrEqual(1)
    }))

  it.scopedLive("ready fails at once with the PermanentError, not a transient timeout a deadline later", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ password: "right-password" })
      const logs = LogCapture.make()
      const url = `redis://:wrong-password@${server.host}:${server.port}`
      const redis = yield* connect({ url, connectTimeout: "500 millis", commandTimeout: "3 seconds" }).pipe(
        Effect.provide(logs.layer)
      )
      yield* eventually(Effect.sync(() => logs.lines.some((l) => l.level === "ERROR")), 2000)
      const started = Date.now()
      const error = yield* Effect.flip(redis.ready)
      // Waiting for the socket's next reconnect would take the 3 s deadline (it retries every 5 s).
      expect(Date.now() - started).toBeLessThan(1000)
      expect(error).toMatchObject({ _tag: "PermanentError", reason: "auth", operation: "ready" })
      expect(error.message.startsWith("not connected: ")).toBe(true)
      expect(error.message).not.toContain("wrong-password")
    }))

  it.scopedLive("the right password after a restart: commands succeed again", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ users: [{ username: "app", password: "pw", rules: "on >pw ~* &* +@all" }] })
      const redis = yield* connect({ url: `redis://app:pw@${server.host}:${server.port}` })
      yield* redis.set("k", "v", Option.none())
      expect(yield* redis.get("k")).toBe("v")
    }))
})

describe("RedisConnection: writes that fail per key", () => {
  it.scopedLive("mset with a TTL (a pipeline of SETs) fails when a SET is refused; setBatched fails that caller", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({
        users: [{ username: "reader", password: "pw", rules: "on >pw ~* &* +@all -set -mset" }]
      })
      const redis = yield* connect({ url: `redis://reader:pw@${server.host}:${server.port}` })
      const withTtl = yield* Effect.flip(redis.mset([["a", "1"], ["b", "2"]], Option.some(Duration.seconds(10))))
      expect(withTtl).toMatchObject({ _tag: "PermanentError", reason: "no_permission", operation: "mset" })
      const plain = yield* Effect.flip(redis.mset([["a", "1"]], Option.none()))
      expect(plain).toMatchObject({ _tag: "PermanentError", reason: "no_permission", operation: "mset" })
      const batched = yield* Effect.all([
        Effect.flip(redis.setBatched("a", "1", Option.some(Duration.seconds(10)))),
        Effect.flip(redis.setBatched("b", "2", Option.none()))
      ], { concurrency: "unbounded" })
      expect(batched).toMatchObject([
        { _tag: "PermanentError", reason: "no_permission", operation: "set" },
        { _tag: "PermanentError", reason: "no_permission", operation: "set" }
      ])
      // An empty mset sends nothing and succeeds.
      yield* redis.mset([], Option.some(Duration.seconds(1)))
      expect(yield* commandCalls(server, "mset")).toBe(0)
    }))
})

describe("RedisConnection: coalesced writes land under their own keys", () => {
  it.scopedLive("one setBatched alone, then five in one tick (the first sent at once, four in one MSET): each value under its key, nothing else", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: `redis://${server.host}:${server.port}` })
      yield* redis.setBatched("alone", "v0", Option.none())
      yield* Effect.all(
        Array.from({ length: 5 }, (_, i) => redis.setBatched(`k${i}`, `v${i + 1}`, Option.none())),
        { concurrency: "unbounded" }
      )
      // After a tick of one call, the next tick's first is sent at once; the other four share one MSET.
      expect(yield* commandCalls(server, "mset")).toBe(3)
      // Five more in one tick after that tick of five, with nothing in flight: the first two go as soon as they are
      // there (a quarter of the last tick's calls, at least two), the other three share one MSET.
      yield* Effect.all(
        Array.from({ length: 5 }, (_, i) => redis.setBatched(`k${i}`, `v${i + 1}`, Option.none())),
        { concurrency: "unbounded" }
      )
      expect(yield* commandCalls(server, "mset")).toBe(5)
      const keys = (yield* server.command("KEYS", "*")) as ReadonlyArray<string>
      expect([...keys].sort()).toEqual(["alone", "k0", "k1", "k2", "k3", "k4"])
      expect(yield* redis.mget(["alone", "k0", "k4"])).toEqual(["v0", "v1", "v5"])
    }))
})

describe("RedisConnection: SCAN", () => {
  it.scopedLive("steps until cursor 0, returning every matching key once", () =>
    Effect.gen(function*() {
      const redis = yield* connect({ url: REDIS_URL })
      const keys = Array.from({ length: 30 }, (_, i) => `${prefix}scan:${i}`)
      yield* redis.mset(keys.map((k) => [k, "x"] as const), Option.some(Duration.seconds(60)))
      const found = new Set<string>()
      let cursor = "0"
      let steps = 0
      do {
        const [next, batch] = yield* redis.scan(cursor, `${prefix}scan:*`, 1000)
        for (const k of batch) found.add(k)
        cursor = next
        steps++
      } while (cursor !== "0" && steps < 10_000)
      expect(cursor).toBe("0")
      expect([...found].sort()).toEqual([...keys].sort())
      yield* redis.del(keys)
    }))
})

describe("RedisConnection: the socket watcher", () => {
  it.scopedLive("ready for each ready socket, closed then ready again on a reconnect, nothing after the scope", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 2 })
      const events: Array<string> = []
      const scope = yield* Scope.make()
      yield* redis.watchSockets!({
        ready: (index, client) => events.push(`ready ${index} ${client.status}`),
        closed: (index) => events.push(`closed ${index}`)
      }).pipe(Scope.extend(scope))
      expect(events.sort()).toEqual(["ready 0 ready", "ready 1 ready"])
      events.length = 0
      yield* server.command("CLIENT", "KILL", "TYPE", "normal")
      expect(yield* eventually(Effect.sync(() => events.filter((e) => e.startsWith("ready")).length === 2), 3000)).toBe(true)
      expect(events.filter((e) => e.startsWith("closed")).sort()).toEqual(["closed 0", "closed 1"])
      yield* Scope.close(scope, Exit.void)
      events.length = 0
      yield* server.command("CLIENT", "KILL", "TYPE", "normal")
      yield* redis.ready
      yield* Effect.sleep("100 millis")
      expect(events).toEqual([])
    }))
})

describe("RedisConnection: coalescing", () => {
  it.scopedLive("at most 256 keys per MGET: 257 concurrent reads are two MGETs, 256 are one", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1 })
      yield* redis.set("k0", "v0", Option.none())
      const read = (n: number) =>
        Effect.forEach(Array.from({ length: n }, (_, i) => `k${i}`), (k) => redis.getBatched(k), { concurrency: "unbounded" })
      // Each tick of the bound's after a tick of 1,024: the next tick's early part (a quarter of the last tick's calls,
      // sent when nothing is in flight) is then 256, the bound itself, so the tick's MGETs are the bound's alone.
      yield* read(1024)
      const before = yield* commandCalls(server, "mget")
      const answers = yield* read(257)
      expect(answers[0]).toBe("v0")
      expect(answers.slice(1).every((a) => a === null)).toBe(true)
      expect((yield* commandCalls(server, "mget")) - before).toBe(2)
      yield* read(1024)
      const afterFirst = yield* commandCalls(server, "mget")
      yield* read(256)
      expect((yield* commandCalls(server, "mget")) - afterFirst).toBe(1)
      // A read alone is an MGET of one key, sent in the same tick's batch.
      expect(yield* redis.getBatched("k0")).toBe("v0")
      expect((yield* commandCalls(server, "mget")) - afterFirst).toBe(2)
    }))
})

describe("RedisConnection: the health check", () => {
  it.scopedLive("PINGs only sockets idle for the interval; a socket in use is not pinged", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1, healthCheckInterval: "1 second" })
      const pings = () => commandCalls(server, "ping")
      // In use every 100 ms for 1.5 s: never idle for the interval, never pinged.
      const start = yield* pings()
      for (let i = 0; i < 15; i++) {
        yield* redis.get("k")
        yield* Effect.sleep("100 millis")
      }
      expect((yield* pings()) - start).toBe(0)
      // Idle: pinged within the interval and a half (checked every half interval).
      expect(yield* eventually(Effect.map(pings(), (n) => n > start), 2000)).toBe(true)
    }))
})

describe("RedisConnection: logs", () => {
  it.scopedLive("a lost server: one warning, then debug for the retries; info when it is back", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const logs = LogCapture.make()
      const redis = yield* connect({ url: server.url, maxConnections: 1, connectTimeout: "300 millis" }).pipe(
        Effect.provide(logs.layer)
      )
      yield* redis.set("k", "v", Option.none())
      yield* server.stop
      yield* eventually(
        Effect.sync(() => logs.lines.filter((l) => l.message === "redis connection error").length >= 3),
        3000
      )
      yield* server.start
      expect(yield* eventually(Effect.sync(() => logs.lines.some((l) => l.message === "redis connection ready again")), 5000))
        .toBe(true)
      const errors = logs.lines.filter((l) => l.message === "redis connection error")
      expect(errors[0]!.level).toBe("WARN")
      expect(errors[0]!.annotations).toMatchObject({ operation: "connection", socket: 0 })
      expect(errors.slice(1).every((l) => l.level === "DEBUG")).toBe(true)
      expect(logs.lines.find((l) => l.message === "redis connection ready again")).toMatchObject({
        level: "INFO",
        annotations: { socket: 0 }
      })
    }))
})

describe("RedisConnection: the Sentinel fence, driven by the sentinels' events", () => {
  /**
   * One real sentinel monitoring one primary, and a plain server listed as a second sentinel: the connection
   * subscribes to every sentinel's events, so what is PUBLISHed there reaches it as a sentinel's event would.
   */
  const setup = Effect.gen(function*() {
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
      commandTimeout: "500 millis",
      connectTimeout: "500 millis"
    }).pipe(Effect.provide(logs.layer))
    yield* redis.ready
    const logged = (message: string) => logs.lines.filter((l) => l.message === message)
    // Publishes until the connection's subscription has it (its subscription is made in the background).
    const publish = (channel: string, message: string, until: () => boolean) =>
      Effect.gen(function*() {
        for (let i = 0; i < 100 && !until(); i++) {
          yield* events.command("PUBLISH", channel, message)
          yield* Effect.sleep("20 millis")
        }
        expect(until()).toBe(true)
      })
    return { primary, redis, logs, logged, publish, events }
  })

  it.scopedLive("a failover under way fences the primary: writes fail as never sent until it is aborted", () =>
    Effect.gen(function*() {
      const { logged, primary, publish, redis, events } = yield* setup
      yield* redis.set("k", "v", Option.none())
      // Events of another master, and malformed ones, change nothing.
      const other = `slave 127.0.0.1:1 127.0.0.1 1 @ other 127.0.0.1 ${primary.port}`
      const subscribed = Effect.gen(function*() {
        for (let i = 0; i < 100; i++) {
          if (Number(yield* events.command("PUBSUB", "NUMPAT")) > 0) return
          yield* Effect.sleep("20 millis")
        }
      })
      yield* subscribed
      yield* events.command("PUBLISH", "+selected-slave", other)
      yield* events.command("PUBLISH", "+selected-slave", `slave 127.0.0.1:1 127.0.0.1 1 @ m 127.0.0.1`)
      yield* events.command("PUBLISH", "+switch-master", `other 127.0.0.1 ${primary.port} 127.0.0.1 1`)
      yield* events.command("PUBLISH", "+switch-master", `m 127.0.0.1 ${primary.port} 127.0.0.1`)
      yield* Effect.sleep("100 millis")
      expect(yield* redis.get("k")).toBe("v")
      expect(logged("redis primary fenced: a failover is under way (Sentinel)")).toHaveLength(0)
      expect(logged("redis primary switched (Sentinel)")).toHaveLength(0)

      yield* publish(
        "+selected-slave",
        `slave 127.0.0.1:1 127.0.0.1 1 @ m 127.0.0.1 ${primary.port}`,
        () => logged("redis primary fenced: a failover is under way (Sentinel)").length > 0
      )
      expect(logged("redis primary fenced: a failover is under way (Sentinel)")[0]!.annotations).toMatchObject({
        primary: `127.0.0.1:${primary.port}`,
        event: "+selected-slave"
      })
      const fenced = yield* Effect.flip(redis.set("k", "w", Option.none()))
      expect(fenced).toMatchObject({ _tag: "TransientError", reason: "connection_unavailable", outcome: "not_sent" })
      const batched = yield* Effect.flip(redis.setBatched("k", "w", Option.none()))
      expect(batched).toMatchObject({ _tag: "TransientError", outcome: "not_sent" })
      expect(yield* Effect.flip(redis.getBatched("k"))).toMatchObject({ outcome: "not_sent" })
      expect(String(yield* primary.command("GET", "k"))).toBe("v")

      // The failover is aborted: the fence is lifted.
      yield* publish(
        "-failover-abort-not-elected",
        `master m 127.0.0.1 ${primary.port}`,
        () => logged("redis primary fence lifted").length > 0
      )
      expect(logged("redis primary fence lifted")[0]!.annotations).toMatchObject({
        primary: `127.0.0.1:${primary.port}`,
        why: "-failover-abort-not-elected"
      })
      yield* redis.set("k", "w", Option.none())
      expect(yield* redis.get("k")).toBe("w")
    }))

  it.scopedLive("a switch away from our primary drops the socket and keeps it off; a switch back lifts it", () =>
    Effect.gen(function*() {
      const { logged, primary, publish, redis } = yield* setup
      yield* redis.set("k", "v", Option.none())
      yield* publish(
        "+switch-master",
        `m 127.0.0.1 ${primary.port} 127.0.0.1 1`,
        () => logged("redis primary switched (Sentinel)").length > 0
      )
      expect(logged("redis primary switched (Sentinel)")[0]!.annotations).toMatchObject({
        from: `127.0.0.1:${primary.port}`,
        to: "127.0.0.1:1"
      })
      // The sentinel still names the old primary: each socket that reaches it is dropped again; no write lands there.
      yield* Effect.sleep("300 millis")
      expect(logged("redis socket reached the demoted primary; reconnecting").length).toBeGreaterThan(0)
      const exit = yield* Effect.exit(redis.set("k", "lost", Option.none()))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(String(yield* primary.command("GET", "k"))).toBe("v")
      // A later switch that elects it again: the socket stays on it and writes succeed.
      yield* publish(
        "+switch-master",
        `m 127.0.0.1 1 127.0.0.1 ${primary.port}`,
        () => logged("redis primary switched (Sentinel)").length > 1
      )
      yield* redis.ready
      yield* redis.set("k", "back", Option.none())
      expect(String(yield* primary.command("GET", "k"))).toBe("back")
    }))
})
