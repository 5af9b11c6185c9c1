/**
 * Sentinel support: the `redis+sentinel://` form (parsing, typed errors, redaction), the ioredis options it maps
 * to, and the connection against a real Sentinel set (`RedisSentinel.make`: a primary, 2 replicas, 3 sentinels)
 * through a `SENTINEL FAILOVER`, a killed primary, and the killed primary coming back.
 */
import { describe, expect, it } from "@effect/vitest"
import { LogCapture, RedisSentinel } from "@steadfast/testing"
import type { RedisServer } from "@steadfast/testing"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createServer } from "node:net"
import * as RedisConfig from "../src/RedisConfig.js"
import * as RedisConnection from "../src/RedisConnection.js"

const SECRET = "s3ntinel-data-pw"
const SENTINEL_SECRET = "s3ntinel-own-pw"

const read = (env: Record<string, string>) =>
  RedisConfig.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

const parse = (url: string) => RedisConfig.parseUrl(Redacted.make(url))

/** A port nothing listens on: bind, read it, close. */
const deadPort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("Sentinel: configuration", () => {
  it("parses the sentinel forms", () => {
    expect(Either.getOrThrow(parse("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,sentinel-c/mymaster"))).toEqual({
      topology: "sentinel",
      tls: false,
      sentinels: [
        { host: "10.0.0.1", port: 26379 },
        { host: "10.0.0.2", port: 26380 },
        { host: "sentinel-c", port: RedisConfig.defaultSentinelPort }
      ],
      masterName: "mymaster",
      db: 0,
      username: Option.none(),
      password: Option.none()
    })
    const full = Either.getOrThrow(parse(`rediss+sentinel://app:${encodeURIComponent("p@ss/w:rd")}@[::1]:26379,h2:1/my%20master/3/`))
    expect(full).toMatchObject({ topology: "sentinel", tls: true, masterName: "my master", db: 3 })
    if (full.topology !== "sentinel") throw new Error("not sentinel")
    expect(full.sentinels).toEqual([{ host: "::1", port: 26379 }, { host: "h2", port: 1 }])
    expect(Option.getOrThrow(full.username)).toBe("app")
    expect(Redacted.value(Option.getOrThrow(full.password))).toBe("p@ss/w:rd")
    // A password alone (the data nodes' `requirepass`), scheme in capitals.
    const pw = Either.getOrThrow(parse(`REDIS+SENTINEL://:${SECRET}@h:26379/m`))
    expect(Option.isNone(pw.username)).toBe(true)
    expect(Redacted.value(Option.getOrThrow(pw.password))).toBe(SECRET)
    // The standalone forms are unchanged.
    expect(Either.getOrThrow(parse("redis://h:6380/1"))).toMatchObject({ topology: "standalone", host: "h", port: 6380, db: 1 })
  })

  const bad: ReadonlyArray<readonly [string, string]> = [
    [`redis+sentinel://:${SECRET}@/mymaster`, "no sentinel hosts"],
    [`redis+sentinel://:${SECRET}@`, "no sentinel hosts"],
    [`redis+sentinel://:${SECRET}@h1:26379,,h2/mymaster`, "empty sentinel host 2 of 3"],
    [`redis+sentinel://:${SECRET}@h1:26379,h2:notaport/mymaster`, "invalid port in sentinel host 2 of 2"],
    [`redis+sentinel://:${SECRET}@h1:0/mymaster`, "invalid port in sentinel host 1 of 1"],
    [`redis+sentinel://:${SECRET}@h1:70000/mymaster`, "invalid port"],
    [`redis+sentinel://:${SECRET}@h1:26379`, "no master name"],
    [`redis+sentinel://:${SECRET}@h1:26379/`, "no master name"],
    [`redis+sentinel://:${SECRET}@h1:26379//2`, "no master name"],
    [`redis+sentinel://:${SECRET}@h1:26379/mymaster/db2`, "invalid database number"],
    [`redis+sentinel://:${SECRET}@h1:26379/mymaster/2/x`, "too many path segments"],
    [`redis+sentinel://:${SECRET}@h1:26379/mymaster?password=${SECRET}`, "query"],
    [`redis+sentinel://:${SECRET}@[::1/mymaster`, "invalid sentinel host 1 of 1"],
    [`redis+proxy://:${SECRET}@h1:7000`, "expected redis:, rediss:, redis+sentinel:, rediss+sentinel:, redis+cluster: or rediss+cluster:"]
  ]
  for (const [url, problem] of bad) {
    it.effect(`REDIS_URL ${url.replaceAll(SECRET, "***")}: "${problem}", without the password`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(read({ REDIS_URL: url }))
        expect(ConfigError.isInvalidData(error)).toBe(true)
        expect(String(error)).toContain("REDIS_URL")
        expect(String(error)).toContain(problem)
        expect(String(error)).not.toContain(SECRET)
        // The same rules in code, naming `url`.
        const inCode = RedisConfig.fromOptions({ url })
        expect(Either.isLeft(inCode) && String(inCode.left)).toContain(problem)
        expect(Either.isLeft(inCode) && String(inCode.left)).not.toContain(SECRET)
      }))
  }

  it.effect("describe() shows the topology, never a password", () =>
    Effect.gen(function*() {
      const c = yield* read({
        REDIS_URL: `redis+sentinel://app:${SECRET}@10.0.0.1:26379,[::1]:26380/mymaster/2`,
        REDIS_SENTINEL_PASSWORD: SENTINEL_SECRET
      })
      expect(Redacted.value(Option.getOrThrow(c.sentinelPassword))).toBe(SENTINEL_SECRET)
      const described = RedisConfig.describe(c)
      expect(described).toMatchObject({
        url: "redis+sentinel://app:<redacted>@10.0.0.1:26379,[::1]:26380/mymaster/2",
        topology: "sentinel",
        sentinels: "10.0.0.1:26379,[::1]:26380",
        masterName: "mymaster",
        sentinelPassword: "<redacted>",
        tls: false
      })
      for (const printed of [JSON.stringify(described), JSON.stringify(c), String(c.url), String(c.sentinelPassword)]) {
        expect(printed).not.toContain(SECRET)
        expect(printed).not.toContain(SENTINEL_SECRET)
      }
      expect(RedisConfig.describe(yield* read({}))).toMatchObject({ topology: "standalone" })
      const inCode = Either.getOrThrow(RedisConfig.fromOptions({ url: `rediss+sentinel://h/m`, sentinelPassword: SENTINEL_SECRET }))
      expect(JSON.stringify(RedisConfig.describe(inCode))).not.toContain(SENTINEL_SECRET)
      expect(RedisConfig.describe(inCode)).toMatchObject({ url: "rediss+sentinel://h:26379/m/0", tls: true })
    }))

  it("maps to ioredis' Sentinel options: failover detector on, bounded sentinel retries, every existing option kept", () => {
    const config = Either.getOrThrow(RedisConfig.fromOptions({
      url: `rediss+sentinel://app:${SECRET}@s1:26379,s2:26380/mymaster/1`,
      sentinelPassword: SENTINEL_SECRET,
      commandTimeout: "400 millis",
      tlsCa: "-----BEGIN CERTIFICATE-----"
    }))
    const url = Either.getOrThrow(RedisConfig.parseUrl(config.url))
    const o = RedisConnection.clientOptions(config, url)
    expect(o).toMatchObject({
      sentinels: [{ host: "s1", port: 26379 }, { host: "s2", port: 26380 }],
      name: "mymaster",
      role: "master",
      db: 1,
      username: "app",
      password: SECRET,
      sentinelPassword: SENTINEL_SECRET,
      failoverDetector: true,
      sentinelMaxConnections: 10,
      sentinelCommandTimeout: 400,
      enableTLSForSentinelMode: true,
      tls: { rejectUnauthorized: true, ca: "-----BEGIN CERTIFICATE-----" },
      sentinelTLS: { rejectUnauthorized: true, ca: "-----BEGIN CERTIFICATE-----" },
      // Unchanged from the standalone options:
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: 2000,
      keepAlive: 60_000,
      connectionName: "steadfast"
    })
    expect(o.host).toBeUndefined()
    expect(o.port).toBeUndefined()
    // No fixed SNI name: the data nodes' addresses come from the sentinels.
    expect((o.tls as { servername?: string }).servername).toBeUndefined()
    // Never null (which would end the client for good), bounded, growing.
    const retry = o.sentinelRetryStrategy!
    const delays = Array.from({ length: 50 }, (_, i) => retry(i + 1))
    expect(delays.every((d) => typeof d === "number" && d >= 0 && d < 600)).toBe(true)
    const reconnect = o.sentinelReconnectStrategy!
    expect(reconnect(1)).toBe(100)
    expect(reconnect(100)).toBe(2000)
    const onError = o.reconnectOnError as (e: Error) => unknown
    expect(onError(new Error("READONLY You can't write against a read only replica."))).toBe(1)
    expect(onError(new Error("WRONGTYPE Operation against a key"))).toBe(false)
    // Plain TCP to both without rediss+sentinel.
    const plain = Either.getOrThrow(RedisConfig.fromOptions({ url: "redis+sentinel://s1/mymaster" }))
    const p = RedisConnection.clientOptions(plain, Either.getOrThrow(RedisConfig.parseUrl(plain.url)))
    expect(p.tls).toBeUndefined()
    expect(p.sentinelTLS).toBeUndefined()
    expect(p.enableTLSForSentinelMode).toBeUndefined()
    expect(p.sentinelPassword).toBeUndefined()
  })

  it.live("no sentinel answers: calls fail fast and transient, availability is down, no log holds a password", () =>
    Effect.gen(function*() {
      const [a, b] = [yield* deadPort, yield* deadPort]
      const logs = LogCapture.make()
      const run = Effect.gen(function*() {
        const redis = yield* RedisConnection.make(Either.getOrThrow(RedisConfig.fromOptions({
          url: `redis+sentinel://app:${SECRET}@127.0.0.1:${a},127.0.0.1:${b}/mymaster`,
          sentinelPassword: SENTINEL_SECRET,
          commandTimeout: "300 millis",
          connectTimeout: "300 millis"
        })))
        // The first pass over both sentinels has failed by now.
        yield* Effect.sleep("200 millis")
        expect(redis.availability()).toBe("down")
        const started = performance.now()
        const exit = yield* Effect.exit(redis.get("k"))
        const ms = performance.now() - started
        expect(ms).toBeLessThan(50)
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain("TransientError")
        const ready = yield* Effect.exit(redis.ready)
        expect(Exit.isFailure(ready)).toBe(true)
        expect(redis.server).toEqual({ host: "127.0.0.1", port: a, tls: false })
      })
      yield* Effect.scoped(run).pipe(Effect.provide(logs.layer))
      const errors = logs.lines.filter((l) => l.message === "redis connection error")
      expect(errors.length).toBeGreaterThan(0)
      expect(errors.every((l) => l.annotations["error_type"] === "host_unreachable")).toBe(true)
      for (const l of logs.lines) {
        expect(l.line).not.toContain(SECRET)
        expect(l.line).not.toContain(SENTINEL_SECRET)
      }
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// Against a real Sentinel set
// ---------------------------------------------------------------------------------------------------------------

/** How soon after the sentinels' switch the connection writes to the new primary (measured: tens of ms). */
const FOLLOW_FAILOVER_MS = 1000
/** After a kill: one reconnect backoff (at most ~550 ms) after the new primary is elected, plus margin. */
const FOLLOW_KILL_MS = 1500

interface Ack {
  readonly key: string
  readonly at: number
}

/**
 * One writer of unique keys (`SET w:<n> <n>`) through the connection, every ~5 ms; remembers what was acknowledged
 * and when. No retries: a failed write is simply not acknowledged.
 */
const startWriter = (redis: RedisConnection.RedisConnection, prefix: string) =>
  Effect.gen(function*() {
    const acked: Array<Ack> = []
    let failed = 0
    let n = 0
    let running = true
    const fiber = yield* Effect.fork(Effect.gen(function*() {
      while (running) {
        const key = `${prefix}${n++}`
        const result = yield* Effect.either(redis.set(key, key, Option.none()))
        if (result._tag === "Right") acked.push({ key, at: performance.now() })
        else failed++
        yield* Effect.sleep("5 millis")
      }
    }))
    const stop = Effect.zipRight(Effect.sync(() => (running = false)), Fiber.join(fiber))
    const firstAckAfter = (t: number) => acked.find((a) => a.at >= t)?.at
    return { acked, failed: () => failed, stop, firstAckAfter }
  })

const connect = (set: RedisSentinel.RedisSentinel) =>
  RedisConnection.make(Either.getOrThrow(RedisConfig.fromOptions({
    url: `redis+sentinel://${set.sentinels.map((s) => `${s.host}:${s.port}`).join(",")}/${set.masterName}`,
    commandTimeout: "500 millis",
    connectTimeout: "500 millis"
  })))

const serverAt = (set: RedisSentinel.RedisSentinel, address: RedisSentinel.Address): RedisServer.RedisServer =>
  set.servers.find((s) => s.port === address.port)!

/** How many of `keys` exist on `server` (EXISTS, in chunks). */
const present = (server: RedisServer.RedisServer, keys: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    let found = 0
    for (let i = 0; i < keys.length; i += 500) {
      const reply = yield* server.command("EXISTS", ...keys.slice(i, i + 500))
      found += Number(reply)
    }
    return found
  })

const role = (server: RedisServer.RedisServer) =>
  Effect.map(server.command("ROLE"), (reply) => (Array.isArray(reply) ? String(reply[0]) : "?"))

describe("Sentinel: a real Sentinel set", () => {
  it.live("connects, writes and reads; SENTINEL FAILOVER: follows the new primary, nothing more reaches the old one", () =>
    Effect.gen(function*() {
      const set = yield* RedisSentinel.make()
      const redis = yield* connect(set)
      yield* redis.set("hello", "world", Option.none())
      expect(yield* redis.get("hello")).toBe("world")
      const first = yield* set.primary
      expect(yield* serverAt(set, first).command("GET", "hello")).toBe("world")
      expect(yield* redis.status).toEqual(["ready"])

      const writer = yield* startWriter(redis, "w:")
      yield* Effect.sleep("300 millis")
      const started = performance.now()
      const change = yield* set.failover
      const switched = performance.now()
      yield* Effect.sleep("700 millis")
      yield* writer.stop
      const oldPrimary = serverAt(set, change.from)
      const newPrimary = serverAt(set, change.to)
      // Read right away: the old primary is still a primary (Sentinel demotes it ~10 s later), so what it holds is what
      // clients wrote to it, not a copy of the new primary.
      const oldRole = yield* role(oldPrimary)
      const afterSwitch = writer.acked.filter((a) => a.at >= switched).map((a) => a.key)
      const onOld = yield* present(oldPrimary, afterSwitch)
      const all = writer.acked.map((a) => a.key)
      const onNew = yield* present(newPrimary, all)
      const firstAck = writer.firstAckAfter(switched)
      const figures = {
        failoverMs: Math.round(switched - started),
        firstWriteAfterSwitchMs: firstAck === undefined ? null : Math.round(firstAck - switched),
        acked: all.length,
        failedWrites: writer.failed(),
        ackedAfterSwitch: afterSwitch.length,
        ackedAfterSwitchOnOldPrimary: onOld,
        oldPrimaryRoleAtCheck: oldRole,
        lost: all.length - onNew
      }
      console.log(`[sentinel] failover ${JSON.stringify(figures)}`)
      expect(oldRole).toBe("master")
      expect(afterSwitch.length).toBeGreaterThan(50)
      expect(figures.firstWriteAfterSwitchMs).not.toBeNull()
      expect(figures.firstWriteAfterSwitchMs!).toBeLessThanOrEqual(FOLLOW_FAILOVER_MS)
      expect(onOld).toBe(0)
      expect(figures.lost).toBe(0)
      expect(yield* redis.get("hello")).toBe("world")
    }).pipe(Effect.scoped))

  it.live("killPrimary: follows the new primary; the killed primary returning (restartOld) gets no writes from us", () =>
    Effect.gen(function*() {
      const set = yield* RedisSentinel.make()
      const redis = yield* connect(set)
      yield* redis.set("hello", "world", Option.none())
      const writer = yield* startWriter(redis, "k:")
      yield* Effect.sleep("300 millis")
      const started = performance.now()
      const change = yield* set.killPrimary
      const elected = performance.now()
      yield* Effect.sleep("1500 millis")
      const firstAck = writer.firstAckAfter(elected)
      const newPrimary = serverAt(set, change.to)
      const oldPrimary = serverAt(set, change.from)

      // The killed primary comes back with its primary configuration and an empty dataset (no persistence), and
      // stays a primary for ~10 s until a sentinel converts it. Watch it meanwhile: while it says it is a primary it
      // must hold no key and have no client of ours (connection name "steadfast").
      const watch: Array<{ role: string; keys: number; ours: number }> = []
      let watching = true
      const watcher = yield* Effect.fork(Effect.gen(function*() {
        while (watching) {
          const sample = yield* Effect.either(Effect.all([
            role(oldPrimary),
            oldPrimary.command("DBSIZE"),
            oldPrimary.command("CLIENT", "LIST")
          ]))
          if (sample._tag === "Right") {
            const [r, keys, clients] = sample.right
            const ours = String(clients).split("\n").filter((l) => l.includes("name=steadfast")).length
            watch.push({ role: r, keys: Number(keys), ours })
          }
          yield* Effect.sleep("100 millis")
        }
      }))
      const restarted = yield* set.restartOld
      watching = false
      yield* Fiber.join(watcher)
      yield* writer.stop
      const whilePrimary = watch.filter((w) => w.role === "master")
      const all = writer.acked.map((a) => a.key)
      const onNew = yield* present(newPrimary, all)
      const figures = {
        electedAfterMs: Math.round(elected - started),
        firstWriteAfterElectionMs: firstAck === undefined ? null : Math.round(firstAck - elected),
        restartOldMs: Duration.toMillis(restarted.duration),
        samplesWhileOldWasPrimary: whilePrimary.length,
        keysOnOldWhilePrimary: Math.max(0, ...whilePrimary.map((w) => w.keys)),
        ourClientsOnOldWhilePrimary: Math.max(0, ...whilePrimary.map((w) => w.ours)),
        acked: all.length,
        failedWrites: writer.failed(),
        lost: all.length - onNew
      }
      console.log(`[sentinel] kill+restartOld ${JSON.stringify(figures)}`)
      expect(figures.firstWriteAfterElectionMs).not.toBeNull()
      expect(figures.firstWriteAfterElectionMs!).toBeLessThanOrEqual(FOLLOW_KILL_MS)
      expect(whilePrimary.length).toBeGreaterThan(10)
      expect(figures.keysOnOldWhilePrimary).toBe(0)
      expect(figures.ourClientsOnOldWhilePrimary).toBe(0)
      // Writes kept flowing to the new primary throughout.
      expect(writer.acked.filter((a) => a.at > elected + 2000).length).toBeGreaterThan(100)
      expect(figures.lost).toBe(0)
      expect(yield* redis.get("hello")).toBe("world")
    }).pipe(Effect.scoped))
})
