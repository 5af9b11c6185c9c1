/**
 * What `ScriptedConnection` promises beyond ScriptedConnection.test.ts, found by mutation testing (MUTATION.md,
 * "Redis"): a test double that differs from Redis makes its users' tests pass wrongly.
 *
 * `matchGlob` is checked against Redis itself: a `redis-server` spawned here (never the shared one) holds a set of
 * keys, and for every pattern `KEYS` must answer exactly the keys `matchGlob` accepts. The keys are ASCII: Redis matches
 * bytes where `matchGlob` matches UTF-16 code units (`?` matches `é` in `matchGlob`, not in Redis: documented on
 * `matchGlob`). Redis answers `**` (any run of two stars or more) without the empty key, only `*` alone being
 * special-cased; `matchGlob` does the same since it was found here.
 */
import { describe, expect, it } from "@effect/vitest"
import { Errors } from "@steadfast/resilience"
import { RedisServer } from "@steadfast/testing"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { Redis } from "ioredis"
import * as Classification from "../src/Classification.js"
import * as RedisConnection from "../src/RedisConnection.js"
import * as ScriptedConnection from "../src/ScriptedConnection.js"

/** Deterministic pseudo-random numbers (xorshift), so a failure names the same patterns on every run. */
const rng = (seed: number) => {
  let x = seed
  return (n: number) => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) % n
  }
}

/** Texts over an alphabet heavy in glob syntax: `*`, `?`, sets, ranges, negations, escapes, unterminated sets. */
const texts = (count: number, seed: number, alphabet: ReadonlyArray<string>, maxLength: number) => {
  const next = rng(seed)
  return Array.from({ length: count }, () => Array.from({ length: next(maxLength + 1) }, () => alphabet[next(alphabet.length)]!).join(""))
}

const keyAlphabet = ["a", "b", "c", "x", "-", "^", "[", "]", "\\", "*", "?"]
const patternAlphabet = ["a", "b", "c", "-", "^", "[", "]", "\\", "*", "?", "[a-c]", "[^a]", "[c-a]", "\\*", "[\\]]"]

const keys: ReadonlyArray<string> = [
  ...new Set([
    ...texts(500, 0x1234567, keyAlphabet, 6),
    "a",
    "ab",
    "abc",
    "aXc",
    "hello",
    "hallo",
    "hllo",
    "user:1:name",
    "user:12:name",
    "k*",
    "k?",
    "k[1]",
    "k]",
    "k\\",
    "-",
    "b-",
    "[",
    "]",
    "^",
    "",
    // Deep and long keys: Redis gives up past 1000 nested stars, and must not take exponential time.
    "a".repeat(1100) + "b",
    "a".repeat(60),
    "xab"
  ])
]

const patterns: ReadonlyArray<string> = [
  ...new Set([
    ...texts(700, 0x7654321, patternAlphabet, 5),
    "*",
    "**",
    "a*",
    "*a",
    "*a*",
    "a*b*c",
    "a**c",
    "*c*c",
    "h?llo",
    "h[ae]llo",
    "h[^e]llo",
    "h[a-b]llo",
    "user:*:name",
    "k\\*",
    "k\\?",
    "k\\[1]",
    "k[\\]]",
    "k\\\\",
    "k\\",
    "[",
    "[a",
    "[a-",
    "[a-]",
    "[-a]",
    "[]",
    "[^]",
    "[^",
    "[\\",
    "\\",
    "a\\",
    "?",
    "??",
    "???",
    "*?",
    "?*",
    "[a-c]*[^a]",
    "*[c-a]",
    "[!a]",
    "x" + "*".repeat(1100) + "b", // a run of stars is one star, not 1100 nested ones
    "a**" + "*".repeat(1100),
    "a*a*a*a*a*a*a*a*a*a*a*a*c", // exponential without Redis' "skip longer" cut
    ...[998, 999, 1000, 1001, 1002].map((n) => "a*".repeat(n) + "b") // 1000 nested stars match, 1001 do not
  ])
].filter((p) => p !== "")

describe("ScriptedConnection.matchGlob: as Redis' KEYS matches", () => {
  it.scopedLive("every pattern accepts exactly the keys KEYS answers", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const client = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis({ host: server.host, port: server.port, maxRetriesPerRequest: 1 })),
        (c) => Effect.sync(() => c.disconnect())
      )
      const answers = yield* Effect.promise(async () => {
        await client.mset(...keys.flatMap((k) => [k, "v"]))
        const pipeline = client.pipeline()
        for (const pattern of patterns) pipeline.keys(pattern)
        return ((await pipeline.exec()) ?? []).map(([error, value]) => {
          if (error !== null) throw error
          return [...(value as Array<string>)].sort()
        })
      })
      expect(answers).toHaveLength(patterns.length)
      let nonTrivial = 0
      patterns.forEach((pattern, i) => {
        const expected = answers[i]!
        if (expected.length > 0 && expected.length < keys.length) nonTrivial++
        const matched = keys.filter((k) => ScriptedConnection.matchGlob(pattern, k)).sort()
        expect(matched, `pattern ${JSON.stringify(pattern).slice(0, 80)}`).toEqual(expected)
      })
      // The generated patterns are not all "everything" or "nothing".
      expect(nonTrivial).toBeGreaterThan(100)
    }), { timeout: 30_000 })
})

/** A scripted connection with a 500 ms command deadline, and its control handle. */
const withScripted = <A, E>(
  self: Effect.Effect<A, E, RedisConnection.RedisConnection | ScriptedConnection.ScriptedConnection>,
  options: ScriptedConnection.Options = { commandTimeout: Duration.millis(500), maxConnections: 2 }
) => Effect.provide(self, ScriptedConnection.layer(options))
const setup = Effect.all({ redis: RedisConnection.RedisConnection, scripted: ScriptedConnection.ScriptedConnection })
const none = Option.none<Duration.Duration>()
const suffix = (operation: string) => ` (scripted ${operation})`
const reply = (message: string) => Object.assign(new Error(message), { name: "ReplyError" })

describe("ScriptedConnection: its failures read as the real connection's", () => {
  const transientReplies: ReadonlyArray<Errors.TransientReason> = [
    "loading",
    "busy",
    "try_again",
    "cluster_down",
    "master_down",
    "read_only",
    "out_of_memory",
    "max_clients"
  ]
  it.effect("rejected(reason): Redis' own error reply, which the real connection classifies as that reason", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      for (const reason of transientReplies) {
        yield* scripted.push("get", ScriptedConnection.rejected(reason))
        const error = yield* Effect.flip(redis.get("k"))
        expect(error).toMatchObject({ _tag: "TransientError", operation: "get", reason, outcome: "rejected" })
        expect(error.message.endsWith(suffix("get")), error.message).toBe(true)
        const text = error.message.slice(0, -suffix("get").length)
        // Some real reply text (an upper-case code first), and the connection would classify it the same way.
        expect(text, reason).toMatch(/^[A-Z]+ \S/)
        expect(Classification.classify("get", reply(text)), text).toMatchObject({ reason, outcome: "rejected" })
      }
      // A reason Redis has no reply for says so.
      yield* scripted.push("set", ScriptedConnection.rejected("dns"))
      expect((yield* Effect.flip(redis.set("k", "v", none))).message).toBe("dns error reply (scripted set)")
    })))

  it.effect("permanent(reason): Redis' own error reply, which the real connection classifies as that reason", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      const reasons: ReadonlyArray<Errors.PermanentReason> = ["wrong_type", "auth", "no_permission", "syntax", "unknown_command"]
      for (const reason of reasons) {
        yield* scripted.push("del", ScriptedConnection.permanent(reason))
        const error = yield* Effect.flip(redis.del(["k"]))
        expect(error).toMatchObject({ _tag: "PermanentError", operation: "del", reason })
        expect(error.message.endsWith(suffix("del")), error.message).toBe(true)
        const text = error.message.slice(0, -suffix("del").length)
        expect(text, reason).toMatch(/^[A-Z]+ \S/)
        expect(Classification.classify("del", reply(text)), text).toMatchObject({ _tag: "PermanentError", reason })
      }
      yield* scripted.push("del", ScriptedConnection.permanent("cross_slot"))
      expect((yield* Effect.flip(redis.del(["k"]))).message).toBe("cross_slot error reply (scripted del)")
    })))

  it.effect("notSent, replyLost, a lost slow reply and the deadline: the real connection's messages and classification", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.push("set", ScriptedConnection.notSent, ScriptedConnection.replyLost, ScriptedConnection.slow("1 second"))
      const notSent = yield* Effect.flip(redis.set("k", "v", none))
      expect(notSent.message).toBe("Stream isn't writeable and enableOfflineQueue options is false (scripted set)")
      expect(Classification.classify("set", new Error(notSent.message.slice(0, -suffix("set").length))))
        .toMatchObject({ reason: "connection_unavailable", outcome: "not_sent" })
      const lost = yield* Effect.flip(redis.set("k", "v", none))
      expect(lost.message).toBe("Connection is closed (reply lost) (scripted set)")
      const late = yield* Effect.fork(Effect.flip(redis.set("k", "v", none)))
      yield* TestClock.adjust("500 millis")
      expect((yield* Fiber.join(late)).message).toBe("set exceeded its 500 ms deadline (scripted set)")
      // While down: the same not-sent message for every command.
      yield* scripted.down()
      expect((yield* Effect.flip(redis.ping)).message).toBe(
        "Stream isn't writeable and enableOfflineQueue options is false (scripted ping)"
      )
    })))

  it.effect("a caller waiting for a slow reply when the connection drops: connection_closed, 'Connection is closed'", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.push("get", ScriptedConnection.slow("200 millis"))
      const fiber = yield* Effect.fork(Effect.flip(redis.get("k")))
      yield* TestClock.adjust("10 millis")
      yield* scripted.down()
      expect(yield* Fiber.join(fiber)).toMatchObject({
        reason: "connection_closed",
        outcome: "unknown",
        message: "Connection is closed (scripted get)"
      })
    })))

  it.effect("ready while down: 'no socket ready within <deadline> ms'; abandoned: 'Connection is closed'", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.down()
      const waiting = yield* Effect.fork(Effect.flip(redis.ready))
      yield* TestClock.adjust("500 millis")
      expect(yield* Fiber.join(waiting)).toMatchObject({
        _tag: "TransientError",
        reason: "timeout",
        outcome: "not_sent",
        message: "no socket ready within 500 ms (scripted ready)"
      })
      const abandoned = yield* Effect.fork(Effect.flip(redis.ready))
      yield* TestClock.adjust("10 millis")
      yield* scripted.down({ reconnecting: false })
      expect(yield* Fiber.join(abandoned)).toMatchObject({
        reason: "connection_closed",
        outcome: "unknown",
        message: "Connection is closed (scripted ready)"
      })
      expect(yield* Effect.flip(redis.ready)).toMatchObject({
        reason: "connection_unavailable",
        outcome: "not_sent",
        message: "Stream isn't writeable and enableOfflineQueue options is false (scripted ready)"
      })
    })))
})

describe("ScriptedConnection: deadlines, slow replies and availability", () => {
  it.effect("slow chains add up; a reply due exactly at the deadline is a timeout, applied at its time", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      // 100 + 150 ms < 500: the caller waits 250 ms and gets the answer.
      yield* scripted.push("set", ScriptedConnection.slow("100 millis", ScriptedConnection.slow("150 millis")))
      const quick = yield* Effect.fork(redis.set("a", "1", none))
      yield* TestClock.adjust("249 millis")
      expect(Option.isNone(yield* Fiber.poll(quick))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(Option.map(yield* Fiber.poll(quick), Exit.isSuccess)).toEqual(Option.some(true))
      expect((yield* scripted.log)[0]!.appliedAt).toEqual(Option.some(250))
      // 300 + 300 ms >= 500: the caller fails at 500, the command applies at 600, and was in flight until then.
      yield* scripted.push("set", ScriptedConnection.slow("300 millis", ScriptedConnection.slow("300 millis")))
      const late = yield* Effect.fork(Effect.flip(redis.set("b", "2", none)))
      yield* TestClock.adjust("500 millis")
      expect(yield* Fiber.join(late)).toMatchObject({ reason: "timeout", outcome: "unknown" })
      expect(yield* scripted.inFlight).toBe(1)
      yield* TestClock.adjust("99 millis")
      expect(yield* scripted.peek("b")).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* scripted.peek("b")).toBe("2")
      expect(yield* scripted.inFlight).toBe(0)
      // Exactly the deadline: the caller is told timeout (the answer is not waited for), the command still applies.
      yield* scripted.push("set", ScriptedConnection.slow("500 millis"))
      const edge = yield* Effect.fork(Effect.either(redis.set("c", "3", none)))
      yield* TestClock.adjust("500 millis")
      const result = yield* Fiber.join(edge)
      expect(result._tag).toBe("Left")
      expect(result._tag === "Left" && result.left.reason).toBe("timeout")
      expect(yield* scripted.peek("c")).toBe("3")
    })))

  it.effect("several slow commands are in flight at once; each leaves when applied", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.setDefault("set", ScriptedConnection.slow("100 millis"))
      const a = yield* Effect.fork(redis.set("a", "1", none))
      yield* TestClock.adjust("50 millis")
      const b = yield* Effect.fork(redis.set("b", "2", none))
      yield* TestClock.adjust("1 millis")
      expect(yield* scripted.inFlight).toBe(2)
      yield* TestClock.adjust("49 millis")
      yield* Fiber.join(a)
      expect(yield* scripted.inFlight).toBe(1)
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(b)
      expect(yield* scripted.inFlight).toBe(0)
    })))

  it.effect("setCommandTimeout: validated; new calls and ready get the new deadline, calls in flight keep theirs", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      expect(Duration.toMillis(redis.commandTimeout())).toBe(500)
      for (const bad of [Duration.zero, Duration.infinity, "-1 millis" as Duration.DurationInput]) {
        const error = yield* Effect.flip(redis.setCommandTimeout(bad))
        expect(String(error)).toMatch(/commandTimeout must be a positive, finite duration/)
      }
      expect(Duration.toMillis(redis.commandTimeout())).toBe(500)
      yield* scripted.setDefault("get", ScriptedConnection.slow("10 seconds"))
      const old = yield* Effect.fork(Effect.flip(redis.get("old")))
      yield* TestClock.adjust("1 millis")
      yield* redis.setCommandTimeout("200 millis")
      expect(Duration.toMillis(redis.commandTimeout())).toBe(200)
      expect(Duration.toMillis(redis.config.commandTimeout)).toBe(500) // the configuration as given
      const young = yield* Effect.fork(Effect.flip(redis.get("young")))
      yield* TestClock.adjust("200 millis")
      expect(yield* Fiber.join(young)).toMatchObject({ message: "get exceeded its 200 ms deadline (scripted get)" })
      expect(Option.isNone(yield* Fiber.poll(old))).toBe(true)
      yield* TestClock.adjust("299 millis")
      expect(yield* Fiber.join(old)).toMatchObject({ message: "get exceeded its 500 ms deadline (scripted get)" })
      // A slow reply shorter than the new deadline but longer than... the new deadline decides.
      yield* scripted.push("set", ScriptedConnection.slow("300 millis"))
      const set = yield* Effect.fork(Effect.flip(redis.set("k", "v", none)))
      yield* TestClock.adjust("200 millis")
      expect(yield* Fiber.join(set)).toMatchObject({ reason: "timeout" })
      // ready waits for the new deadline too.
      yield* scripted.down()
      const ready = yield* Effect.fork(Effect.flip(redis.ready))
      yield* TestClock.adjust("199 millis")
      expect(Option.isNone(yield* Fiber.poll(ready))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(ready)).toMatchObject({ message: "no socket ready within 200 ms (scripted ready)" })
    })))

  it.effect("availability and status: ready, reconnecting, down; up and down again", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      expect(redis.availability()).toBe("ready")
      expect(yield* redis.status).toEqual(["ready", "ready", "ready"])
      yield* scripted.down()
      expect(redis.availability()).toBe("reconnecting")
      yield* scripted.down({ reconnecting: false })
      expect(redis.availability()).toBe("down")
      expect(yield* redis.status).toEqual(["end", "end", "end"])
      yield* scripted.up
      expect(redis.availability()).toBe("ready")
      expect(yield* scripted.isUp).toBe(true)
      yield* scripted.up // already up: nothing changes
      yield* redis.ready
      // Down with no reconnect from the start, then a reconnect: ready waits for up again.
      yield* scripted.down({ reconnecting: false })
      yield* scripted.down()
      expect(redis.availability()).toBe("reconnecting")
      const ready = yield* Effect.fork(redis.ready)
      yield* TestClock.adjust("100 millis")
      expect(Option.isNone(yield* Fiber.poll(ready))).toBe(true)
      yield* scripted.up
      yield* Fiber.join(ready)
      // A second down while reconnecting keeps the same wait: up releases a ready started before it.
      yield* scripted.down()
      const first = yield* Effect.fork(redis.ready)
      yield* TestClock.adjust("10 millis")
      yield* scripted.down()
      yield* scripted.up
      yield* Fiber.join(first)
      // After up, a slow reply is not failed by the old drop.
      yield* scripted.push("get", ScriptedConnection.slow("100 millis"))
      const get = yield* Effect.fork(redis.get("k"))
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(get)).toBeNull()
    }), { maxConnections: 3, commandTimeout: "500 millis" }))
})

describe("ScriptedConnection: store, log and options", () => {
  it.effect("scan returns the empty key too, and every key once when stepped two at a time", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      for (const key of ["", "a", "b", "c", "d", "e"]) yield* scripted.put(key, "v")
      const found: Array<string> = []
      let cursor = "0"
      let steps = 0
      do {
        const [next, page] = yield* redis.scan(cursor, "*", 2)
        found.push(...page)
        cursor = next
        steps++
      } while (cursor !== "0" && steps < 20)
      expect(found).toEqual(["", "a", "b", "c", "d", "e"])
      expect(steps).toBe(3)
    })))

  it.effect("del counts the keys that existed; set is not batched; keys are sorted, expired ones left out unread", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.put("x", "1")
      yield* scripted.put("y", "2")
      expect(yield* redis.del(["x", "y", "z"])).toBe(2)
      expect(yield* redis.del(["z"])).toBe(0)
      yield* redis.set("s", "v", none)
      expect((yield* scripted.log).at(-1)).toMatchObject({ command: "set", batched: false })
      yield* scripted.put("b", "v")
      yield* scripted.put("a", "v")
      yield* scripted.put("c", "v", "1 millis")
      yield* TestClock.adjust("1 millis")
      expect(yield* scripted.keys).toEqual(["a", "b", "s"])
    })))

  it.effect("up while already up changes nothing: a later drop still fails a caller waiting for a slow reply", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.push("get", ScriptedConnection.slow("400 millis"))
      const fiber = yield* Effect.fork(Effect.flip(redis.get("k")))
      yield* TestClock.adjust("10 millis")
      yield* scripted.up
      yield* scripted.down()
      yield* TestClock.adjust("10 millis")
      expect(Option.isSome(yield* Fiber.poll(fiber))).toBe(true)
      expect(yield* Fiber.join(fiber)).toMatchObject({ reason: "connection_closed", message: "Connection is closed (scripted get)" })
    })))

  it.effect("TTLs are whole milliseconds, rounded up, at least 1 ms (as SET PX)", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* redis.set("tiny", "v", Option.some(Duration.micros(100n)))
      yield* redis.set("frac", "v", Option.some(Duration.micros(1500n)))
      yield* scripted.put("seeded", "v", Duration.micros(2100n))
      expect(yield* scripted.pttl("tiny")).toBe(1)
      expect(yield* scripted.pttl("frac")).toBe(2)
      expect(yield* scripted.pttl("seeded")).toBe(3)
      yield* TestClock.adjust("1 millis")
      expect(yield* redis.get("tiny")).toBeNull()
      expect(yield* redis.get("frac")).toBe("v")
      yield* TestClock.adjust("1 millis")
      expect(yield* redis.get("frac")).toBeNull()
      expect(yield* scripted.keys).toEqual(["seeded"])
      expect(yield* scripted.pttl("seeded")).toBe(1)
      yield* scripted.put("plain", "v")
      expect(yield* scripted.pttl("plain")).toBe(-1)
    })))

  it.effect("the log: each command's time, keys, outcome and when it applied; clearLog empties it", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* TestClock.adjust("7 millis")
      yield* redis.mset([["a", "1"], ["b", "2"]], none)
      yield* scripted.push("del", ScriptedConnection.rejected("busy"))
      yield* TestClock.adjust("5 millis")
      yield* Effect.either(redis.del(["a"]))
      yield* Effect.either(redis.execute("incr", (c) => c.incr("a")))
      yield* redis.scan("0", "a*", 10)
      const log = yield* scripted.log
      expect(log).toEqual([
        { command: "mset", keys: ["a", "b"], batched: false, outcome: ScriptedConnection.ok, at: 7, applied: true, appliedAt: Option.some(7) },
        {
          command: "del",
          keys: ["a"],
          batched: false,
          outcome: ScriptedConnection.rejected("busy"),
          at: 12,
          applied: false,
          appliedAt: Option.none()
        },
        {
          command: "execute",
          keys: [],
          batched: false,
          outcome: ScriptedConnection.permanent("unknown_command"),
          at: 12,
          applied: false,
          appliedAt: Option.none()
        },
        { command: "scan", keys: ["a*"], batched: false, outcome: ScriptedConnection.ok, at: 12, applied: true, appliedAt: Option.some(12) }
      ])
      const error = yield* Effect.flip(redis.execute("incr", (c) => c.incr("a")))
      expect(error.message).toBe(
        "the scripted connection does not support raw commands (execute \"incr\"): it has no ioredis client; use the named operations, or a real server"
      )
      yield* scripted.clearLog
      expect(yield* scripted.log).toEqual([])
      yield* redis.get("a")
      expect((yield* scripted.log).map((e) => e.command)).toEqual(["get"])
    })))

  it.effect("the script function sees each request: command, keys, batched, index per command", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      const seen: Array<ScriptedConnection.Request> = []
      yield* scripted.setScript((request) => (seen.push(request), undefined))
      yield* redis.get("a")
      yield* redis.getBatched("b")
      yield* redis.setBatched("c", "v", none)
      yield* redis.mget(["a", "b"])
      yield* redis.del(["a"])
      yield* redis.scan("0", "x*", 5)
      yield* redis.ping
      yield* redis.get("d")
      expect(seen).toEqual([
        { command: "get", keys: ["a"], batched: false, index: 0 },
        { command: "get", keys: ["b"], batched: true, index: 1 },
        { command: "set", keys: ["c"], batched: true, index: 0 },
        { command: "mget", keys: ["a", "b"], batched: false, index: 0 },
        { command: "del", keys: ["a"], batched: false, index: 0 },
        { command: "scan", keys: ["x*"], batched: false, index: 0 },
        { command: "ping", keys: [], batched: false, index: 0 },
        { command: "get", keys: ["d"], batched: false, index: 2 }
      ])
      // Removed: the defaults decide again.
      yield* scripted.setDefault("get", ScriptedConnection.notSent)
      yield* scripted.setScript(() => ScriptedConnection.ok)
      yield* redis.get("a")
      yield* scripted.setScript(undefined)
      expect(yield* Effect.flip(redis.get("a"))).toMatchObject({ reason: "connection_unavailable" })
      // Several outcomes pushed at once are used in order, one call each.
      yield* scripted.resetScript
      yield* scripted.push("*", ScriptedConnection.notSent, ScriptedConnection.rejected("busy"))
      yield* scripted.push("*", ScriptedConnection.rejected("loading"))
      const reasons = yield* Effect.forEach([0, 1, 2, 3], () => Effect.map(Effect.either(redis.ping), (e) => e._tag === "Left" ? e.left.reason : "ok"))
      expect(reasons).toEqual(["connection_unavailable", "busy", "loading", "ok"])
    })))

  it.effect("scan: expired keys are skipped, a cursor is a number it handed out, COUNT a positive integer", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.put("a", "v")
      yield* scripted.put("b", "v", "10 millis")
      yield* scripted.put("c", "v")
      yield* scripted.put("d", "v")
      yield* TestClock.adjust("10 millis")
      const [cursor, first] = yield* redis.scan("0", "*", 2)
      expect(first).toEqual(["a"]) // "b" examined, expired
      expect(cursor).toMatch(/^[1-9][0-9]*$/)
      expect(yield* redis.scan(cursor, "*", 2)).toEqual(["0", ["c", "d"]])
      // The same cursor can be used again (a retried step).
      expect(yield* redis.scan(cursor, "[cd]", 1)).toEqual([expect.stringMatching(/^[1-9]/), ["c"]])
      // Exactly COUNT keys left: the step that returns them ends the scan.
      expect(yield* redis.scan("0", "*", 3)).toEqual(["0", ["a", "c", "d"]])
      for (const bad of ["999", "-1", "1x", "", " 1"]) {
        expect(yield* Effect.flip(redis.scan(bad, "*", 10)), bad).toMatchObject({
          _tag: "PermanentError",
          operation: "scan",
          reason: "invalid_argument",
          message: "ERR invalid cursor (scripted scan)"
        })
      }
      for (const count of [0, -1, 1.5, Number.NaN]) {
        expect(yield* Effect.flip(redis.scan("0", "*", count)), String(count)).toMatchObject({
          _tag: "PermanentError",
          operation: "scan",
          reason: "syntax",
          message: "ERR syntax error (scripted scan)"
        })
      }
    })))

  it.effect("options: the URL names the server; invalid options are a defect naming the problem", () =>
    Effect.gen(function*() {
      const named = yield* withScripted(setup, { url: "rediss://cache.internal:7000/2" })
      expect(named.redis.server).toEqual({ host: "cache.internal", port: 7000, tls: true })
      // The control handle's tag is found by its key (two copies of the package share it).
      expect(ScriptedConnection.ScriptedConnection.key).toBe("@steadfast/redis/ScriptedConnection")
      const plain = yield* withScripted(setup, {})
      expect(plain.redis.server).toEqual({ host: "scripted", port: 6379, tls: false })
      expect(Duration.toMillis(plain.redis.config.commandTimeout)).toBe(2000)
      const invalid = yield* Effect.exit(withScripted(setup, { maxConnections: 0 }))
      expect(Exit.isFailure(invalid) && Cause.isDie(invalid.cause)).toBe(true)
      expect(String(Exit.isFailure(invalid) ? Cause.squash(invalid.cause) : "")).toMatch(/^.*ScriptedConnection: invalid options: .*maxConnections/)
      const badUrl = yield* Effect.exit(withScripted(setup, { url: "http://x" }))
      expect(String(Exit.isFailure(badUrl) ? Cause.squash(badUrl.cause) : "")).toMatch(/ScriptedConnection: invalid (options|URL)/)
    }))
})
