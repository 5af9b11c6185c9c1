import { describe, expect, it } from "@effect/vitest"
import { Errors } from "@steadfast/resilience"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as RedisConnection from "../src/RedisConnection.js"
import * as ScriptedConnection from "../src/ScriptedConnection.js"

const none = Option.none<Duration.Duration>()

/** A scripted connection with a 500 ms command deadline, and its control handle. */
const setup = Effect.gen(function*() {
  const redis = yield* RedisConnection.RedisConnection
  const scripted = yield* ScriptedConnection.ScriptedConnection
  return { redis, scripted }
})
const withScripted = <A, E>(self: Effect.Effect<A, E, RedisConnection.RedisConnection | ScriptedConnection.ScriptedConnection>) =>
  Effect.provide(self, ScriptedConnection.layer({ commandTimeout: Duration.millis(500), maxConnections: 2 }))

/** The failure of `self`, which must fail. */
const failure = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.flip(self)

/** The exit of a fiber that must be done by now. */
const doneExit = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.map(Fiber.poll(fiber), (exit) => {
    expect(Option.isSome(exit)).toBe(true)
    return Option.getOrThrow(exit)
  })

describe("ScriptedConnection", () => {
  it.effect("config, server and status come from the options", () =>
    withScripted(Effect.gen(function*() {
      const { redis } = yield* setup
      expect(Duration.toMillis(redis.config.commandTimeout)).toBe(500)
      expect(redis.server).toEqual({ host: "scripted", port: 6379, tls: false })
      expect(yield* redis.status).toEqual(["ready", "ready"])
    })))

  describe("ok", () => {
    it.effect("GET/SET/MGET/MSET/DEL behave as Redis' and are logged as applied", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* redis.set("a", "1", none)
        yield* redis.mset([["b", "2"], ["c", "3"]], none)
        expect(yield* redis.get("a")).toBe("1")
        expect(yield* redis.get("missing")).toBeNull()
        expect(yield* redis.mget(["a", "missing", "c"])).toEqual(["1", null, "3"])
        expect(yield* redis.del(["a", "b", "missing", "a"])).toBe(2)
        expect(yield* scripted.keys).toEqual(["c"])
        yield* redis.ping
        // Empty MGET/MSET/DEL send nothing, as the real connection.
        expect(yield* redis.mget([])).toEqual([])
        yield* redis.mset([], none)
        expect(yield* redis.del([])).toBe(0)
        const log = yield* scripted.log
        expect(log.map((e) => e.command)).toEqual(["set", "mset", "get", "get", "mget", "del", "ping"])
        expect(log.every((e) => e.applied && e.outcome._tag === "Ok")).toBe(true)
        expect(log[1]!.keys).toEqual(["b", "c"])
      })))

    it.effect("getBatched/setBatched behave as get/set, scripted as \"get\"/\"set\", logged as batched", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.push("set", ScriptedConnection.notSent)
        expect((yield* failure(redis.setBatched("k", "v", none))).reason).toBe("connection_unavailable")
        yield* redis.setBatched("k", "v", none)
        expect(yield* redis.getBatched("k")).toBe("v")
        const log = yield* scripted.log
        expect(log.map((e) => [e.command, e.batched, e.applied])).toEqual([
          ["set", true, false],
          ["set", true, true],
          ["get", true, true]
        ])
      })))
  })

  it.effect("notSent: fails not_sent, not applied", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.push("set", ScriptedConnection.notSent)
      const error = yield* failure(redis.set("k", "v", none))
      expect(error).toBeInstanceOf(Errors.TransientError)
      expect(error).toMatchObject({ operation: "set", reason: "connection_unavailable", outcome: "not_sent" })
      expect(Errors.mayHaveRun(error)).toBe(false)
      expect(yield* scripted.peek("k")).toBeNull()
      expect((yield* scripted.log)[0]).toMatchObject({ command: "set", applied: false, outcome: { _tag: "NotSent" } })
    })))

  it.effect("replyLost: applied, then fails connection_closed with outcome unknown", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.push("del", ScriptedConnection.replyLost)
      yield* scripted.put("k", "old")
      yield* scripted.push("set", ScriptedConnection.replyLost)
      const error = yield* failure(redis.set("k", "v", none))
      expect(error).toMatchObject({ _tag: "TransientError", reason: "connection_closed", outcome: "unknown" })
      expect(Errors.mayHaveRun(error)).toBe(true)
      expect(yield* scripted.peek("k")).toBe("v")
      expect(yield* failure(redis.del(["k"]))).toMatchObject({ reason: "connection_closed", outcome: "unknown" })
      expect(yield* scripted.peek("k")).toBeNull()
      expect((yield* scripted.log).map((e) => e.applied)).toEqual([true, true])
    })))

  it.effect("rejected: not applied, outcome rejected, with the given reason", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.push("set", ScriptedConnection.rejected("read_only"), ScriptedConnection.rejected())
      expect(yield* failure(redis.set("k", "v", none))).toMatchObject({
        _tag: "TransientError",
        reason: "read_only",
        outcome: "rejected"
      })
      const loading = yield* failure(redis.set("k", "v", none))
      expect(loading).toMatchObject({ reason: "loading", outcome: "rejected" })
      expect(loading.message).toMatch(/^LOADING/)
      expect(yield* scripted.peek("k")).toBeNull()
      yield* redis.set("k", "v", none)
      expect(yield* scripted.peek("k")).toBe("v")
    })))

  it.effect("permanent: a PermanentError, not applied", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      yield* scripted.push("get", ScriptedConnection.permanent())
      yield* scripted.push("set", ScriptedConnection.permanent("auth"))
      const wrongType = yield* failure(redis.get("k"))
      expect(wrongType).toBeInstanceOf(Errors.PermanentError)
      expect(wrongType).toMatchObject({ operation: "get", reason: "wrong_type" })
      expect(yield* failure(redis.set("k", "v", none))).toMatchObject({ _tag: "PermanentError", reason: "auth" })
      expect(yield* scripted.peek("k")).toBeNull()
    })))

  describe("slow", () => {
    it.effect("within the deadline: answers and applies after the duration", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.push("set", ScriptedConnection.slow("300 millis"))
        const fiber = yield* Effect.fork(redis.set("k", "v", none))
        yield* TestClock.adjust("299 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        expect(yield* scripted.peek("k")).toBeNull()
        yield* TestClock.adjust("1 millis")
        expect(Exit.isSuccess(yield* doneExit(fiber))).toBe(true)
        expect(yield* scripted.peek("k")).toBe("v")
        expect((yield* scripted.log)[0]!.appliedAt).toEqual(Option.some(300))
      })))

    it.effect("beyond the deadline: fails at the deadline with timeout/unknown, applied later", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.push("set", ScriptedConnection.slow("2 seconds"))
        const fiber = yield* Effect.fork(redis.set("k", "v", none))
        yield* TestClock.adjust("499 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 millis")
        const exit = yield* doneExit(fiber)
        expect(Exit.isFailure(exit)).toBe(true)
        const error = yield* failure(exit)
        expect(error).toMatchObject({ _tag: "TransientError", reason: "timeout", outcome: "unknown", operation: "set" })
        expect(yield* scripted.peek("k")).toBeNull()
        expect(yield* scripted.inFlight).toBe(1)
        expect((yield* scripted.log)[0]!.applied).toBe(false)
        yield* TestClock.adjust("1499 millis")
        expect(yield* scripted.peek("k")).toBeNull()
        yield* TestClock.adjust("1 millis")
        expect(yield* scripted.peek("k")).toBe("v")
        expect(yield* scripted.inFlight).toBe(0)
        expect((yield* scripted.log)[0]).toMatchObject({ applied: true, appliedAt: Option.some(2000) })
      })))

    it.effect("an interrupted caller does not stop a sent command", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.push("set", ScriptedConnection.slow("100 millis"))
        const fiber = yield* Effect.fork(redis.set("k", "v", none))
        yield* TestClock.adjust("10 millis")
        yield* Fiber.interrupt(fiber)
        yield* TestClock.adjust("90 millis")
        expect(yield* scripted.peek("k")).toBe("v")
      })))

    it.effect("then another outcome: slow then replyLost, slow then rejected", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.push(
          "set",
          ScriptedConnection.slow("100 millis", ScriptedConnection.replyLost),
          ScriptedConnection.slow("100 millis", ScriptedConnection.rejected("busy"))
        )
        const lost = yield* Effect.fork(Effect.flip(redis.set("a", "1", none)))
        const busy = yield* Effect.fork(Effect.flip(redis.set("b", "2", none)))
        yield* TestClock.adjust("100 millis")
        expect(yield* Fiber.join(lost)).toMatchObject({ reason: "connection_closed", outcome: "unknown" })
        expect(yield* Fiber.join(busy)).toMatchObject({ reason: "busy", outcome: "rejected" })
        expect(yield* scripted.keys).toEqual(["a"])
      })))
  })

  describe("TTL on Effect's clock", () => {
    it.effect("SET PX expires under TestClock.adjust; a SET without TTL clears it", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* redis.set("k", "v", Option.some(Duration.seconds(1)))
        yield* redis.set("keep", "v", Option.some(Duration.seconds(1)))
        yield* redis.set("keep", "w", none)
        expect(yield* scripted.pttl("k")).toBe(1000)
        expect(yield* scripted.pttl("keep")).toBe(-1)
        yield* TestClock.adjust("999 millis")
        expect(yield* redis.get("k")).toBe("v")
        expect(yield* scripted.pttl("k")).toBe(1)
        yield* TestClock.adjust("1 millis")
        expect(yield* redis.get("k")).toBeNull()
        expect(yield* scripted.peek("k")).toBeNull()
        expect(yield* scripted.pttl("k")).toBe(-2)
        expect(yield* scripted.keys).toEqual(["keep"])
        // An expired key does not count for DEL.
        expect(yield* redis.del(["k", "keep"])).toBe(1)
      })))

    it.effect("MSET with a TTL sets each key's TTL; setBatched too", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* redis.mset([["a", "1"], ["b", "2"]], Option.some(Duration.millis(250)))
        yield* redis.setBatched("c", "3", Option.some(Duration.millis(100)))
        expect([yield* scripted.pttl("a"), yield* scripted.pttl("b"), yield* scripted.pttl("c")]).toEqual([250, 250, 100])
        yield* TestClock.adjust("100 millis")
        expect(yield* redis.mget(["a", "b", "c"])).toEqual(["1", "2", null])
        yield* TestClock.adjust("150 millis")
        expect(yield* redis.mget(["a", "b", "c"])).toEqual([null, null, null])
      })))

    it.effect("put seeds the store with an optional TTL, without a command", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.put("k", "v", "1 second")
        expect(yield* redis.get("k")).toBe("v")
        yield* TestClock.adjust("1 second")
        expect(yield* redis.get("k")).toBeNull()
        expect((yield* scripted.log).map((e) => e.command)).toEqual(["get", "get"])
      })))
  })

  describe("the script", () => {
    it.effect("pushed outcomes for the command, then for \"*\", then the function, then defaults, then ok", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.push("*", ScriptedConnection.rejected("busy"))
        yield* scripted.push("get", ScriptedConnection.notSent)
        yield* scripted.setScript((r) => r.command === "get" && r.keys[0] === "f" ? ScriptedConnection.replyLost : undefined)
        yield* scripted.setDefault("get", ScriptedConnection.permanent("no_permission"))
        yield* scripted.setDefault("*", ScriptedConnection.rejected("out_of_memory"))
        const reason = (self: Effect.Effect<unknown, Errors.RedisFailure>) =>
          Effect.map(Effect.either(self), (e) => e._tag === "Right" ? "ok" : e.left.reason)
        expect(yield* reason(redis.get("x"))).toBe("connection_unavailable") // pushed for get
        expect(yield* reason(redis.get("x"))).toBe("busy") // pushed for *
        expect(yield* reason(redis.get("f"))).toBe("connection_closed") // the function
        expect(yield* reason(redis.get("x"))).toBe("no_permission") // default for get
        expect(yield* reason(redis.ping)).toBe("out_of_memory") // default for *
        yield* scripted.resetScript
        expect(yield* reason(redis.get("x"))).toBe("ok")
      })))

    it.effect("the function sees the command's index: fail every other SET", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.setScript((r) => r.command === "set" && r.index % 2 === 1 ? ScriptedConnection.notSent : undefined)
        const results = yield* Effect.forEach([0, 1, 2, 3], (i) => Effect.either(redis.set(`k${i}`, "v", none)))
        expect(results.map((r) => r._tag)).toEqual(["Right", "Left", "Right", "Left"])
        expect(yield* scripted.keys).toEqual(["k0", "k2"])
      })))
  })

  it.effect("execute fails with a PermanentError: no raw commands", () =>
    withScripted(Effect.gen(function*() {
      const { redis, scripted } = yield* setup
      const error = yield* failure(redis.execute("incr", (c) => c.incr("k")))
      expect(error).toMatchObject({ _tag: "PermanentError", reason: "unknown_command", operation: "incr" })
      expect(error.message).toMatch(/scripted connection does not support raw commands/)
      expect((yield* scripted.log)[0]).toMatchObject({ command: "execute", applied: false })
    })))

  describe("down/up and ready", () => {
    it.effect("while down every command is notSent and the script is not consulted", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.push("set", ScriptedConnection.replyLost)
        yield* scripted.down()
        expect(yield* scripted.isUp).toBe(false)
        expect(yield* redis.status).toEqual(["reconnecting", "reconnecting"])
        expect(yield* failure(redis.set("k", "v", none))).toMatchObject({
          reason: "connection_unavailable",
          outcome: "not_sent"
        })
        expect(yield* failure(redis.ping)).toMatchObject({ outcome: "not_sent" })
        expect(yield* scripted.peek("k")).toBeNull()
        yield* scripted.up
        expect(yield* redis.status).toEqual(["ready", "ready"])
        // The pushed outcome is still there.
        expect(yield* failure(redis.set("k", "v", none))).toMatchObject({ reason: "connection_closed" })
        expect(yield* scripted.peek("k")).toBe("v")
      })))

    it.effect("ready: at once when up; waits for up while reconnecting", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* redis.ready
        yield* scripted.down()
        const fiber = yield* Effect.fork(redis.ready)
        yield* TestClock.adjust("300 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* scripted.up
        yield* Fiber.join(fiber)
      })))

    it.effect("ready: fails at the command deadline if the reconnect does not complete", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.down()
        const fiber = yield* Effect.fork(Effect.flip(redis.ready))
        yield* TestClock.adjust("499 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 millis")
        expect(yield* Fiber.join(fiber)).toMatchObject({ operation: "ready", reason: "timeout", outcome: "not_sent" })
      })))

    it.effect("ready: fails at once when no reconnect is under way, and waiters fail when it is abandoned", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.down()
        const waiting = yield* Effect.fork(Effect.flip(redis.ready))
        yield* TestClock.adjust("10 millis")
        yield* scripted.down({ reconnecting: false })
        expect(yield* Fiber.join(waiting)).toMatchObject({ reason: "connection_closed" })
        expect(yield* redis.status).toEqual(["end", "end"])
        expect(yield* failure(redis.ready)).toMatchObject({ reason: "connection_unavailable", outcome: "not_sent" })
        // Reconnecting again: ready waits again.
        yield* scripted.down({ reconnecting: true })
        const again = yield* Effect.fork(redis.ready)
        yield* scripted.up
        yield* Fiber.join(again)
        yield* redis.ready
      })))

    it.effect("going down fails a caller waiting for a slow reply; the command still applies", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* scripted.push("set", ScriptedConnection.slow("200 millis"))
        const fiber = yield* Effect.fork(Effect.flip(redis.set("k", "v", none)))
        yield* TestClock.adjust("50 millis")
        yield* scripted.down()
        expect(yield* Fiber.join(fiber)).toMatchObject({ reason: "connection_closed", outcome: "unknown" })
        yield* TestClock.adjust("150 millis")
        expect(yield* scripted.peek("k")).toBe("v")
      })))
  })

  describe("scan", () => {
    const seed = (scripted: ScriptedConnection.ScriptedConnection) =>
      Effect.forEach(Array.from({ length: 300 }, (_, i) => i), (i) =>
        scripted.put(i % 3 === 0 ? `user:${i}:name` : i % 3 === 1 ? `user:${i}:mail` : `session:${i}`, "v"), {
        discard: true
      })

    const scanAll = (redis: RedisConnection.RedisConnection, pattern: string, count: number) =>
      Effect.gen(function*() {
        const found: Array<string> = []
        let cursor = "0"
        let steps = 0
        do {
          const [next, keys] = yield* redis.scan(cursor, pattern, count)
          found.push(...keys)
          cursor = next
          steps++
        } while (cursor !== "0")
        return { found, steps }
      })

    it.effect("returns every matching key and ends at \"0\"; COUNT bounds the work of a step", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* seed(scripted)
        const expected = (yield* scripted.keys).filter((k) => /^user:\d+:name$/.test(k))
        expect(expected).toHaveLength(100)
        const { found, steps } = yield* scanAll(redis, "user:*:name", 25)
        expect(new Set(found)).toEqual(new Set(expected))
        expect(steps).toBeGreaterThanOrEqual(300 / 25)
        const all = yield* scanAll(redis, "*", 1000)
        expect(all.steps).toBe(1)
        expect(all.found).toHaveLength(300)
      })))

    it.effect("keys present for the whole scan are returned even when others are added and deleted", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* seed(scripted)
        const [first, keys] = yield* redis.scan("0", "*", 50)
        // Delete some already returned and some not yet; add new ones on both sides.
        yield* redis.del([keys[0]!, keys[1]!, "user:99:name", "user:297:name"])
        yield* redis.mset([["a-new", "v"], ["zz-new", "v"]], none)
        const rest = yield* Effect.gen(function*() {
          const found: Array<string> = []
          let cursor = first
          while (cursor !== "0") {
            const [next, page] = yield* redis.scan(cursor, "*", 50)
            found.push(...page)
            cursor = next
          }
          return found
        })
        const seen = new Set([...keys, ...rest])
        for (const key of yield* scripted.keys) {
          if (!key.endsWith("-new")) expect(seen.has(key)).toBe(true)
        }
      })))

    it.effect("a cursor survives down/up: a scan interrupted by an outage resumes", () =>
      withScripted(Effect.gen(function*() {
        const { redis, scripted } = yield* setup
        yield* seed(scripted)
        const [cursor, page] = yield* redis.scan("0", "user:*", 40)
        yield* scripted.down()
        expect(yield* failure(redis.scan(cursor, "user:*", 40))).toMatchObject({ outcome: "not_sent" })
        yield* TestClock.adjust("5 seconds")
        yield* scripted.up
        const found = [...page]
        let next = cursor
        while (next !== "0") {
          const [c, keys] = yield* redis.scan(next, "user:*", 40)
          found.push(...keys)
          next = c
        }
        expect(new Set(found).size).toBe(200)
      })))

    it.effect("an empty store scans to \"0\" at once; a bad cursor or COUNT is an error", () =>
      withScripted(Effect.gen(function*() {
        const { redis } = yield* setup
        expect(yield* redis.scan("0", "*", 10)).toEqual(["0", []])
        expect(yield* failure(redis.scan("abc", "*", 10))).toMatchObject({ _tag: "PermanentError", reason: "invalid_argument" })
        expect(yield* failure(redis.scan("0", "*", 0))).toMatchObject({ _tag: "PermanentError", reason: "syntax" })
      })))

    it("MATCH patterns follow Redis' glob", () => {
      const m = ScriptedConnection.matchGlob
      expect(m("*", "")).toBe(true)
      expect(m("a*", "a")).toBe(true)
      expect(m("?", "")).toBe(false)
      expect(m("*", "anything")).toBe(true)
      expect(m("user:*", "user:1")).toBe(true)
      expect(m("user:*", "users:1")).toBe(false)
      expect(m("*:name", "user:1:name")).toBe(true)
      expect(m("a*b*c", "axxbyyc")).toBe(true)
      expect(m("a*b*c", "axxbyy")).toBe(false)
      expect(m("h?llo", "hello")).toBe(true)
      expect(m("h?llo", "hllo")).toBe(false)
      expect(m("h[ae]llo", "hallo")).toBe(true)
      expect(m("h[ae]llo", "hillo")).toBe(false)
      expect(m("h[^e]llo", "hallo")).toBe(true)
      expect(m("h[^e]llo", "hello")).toBe(false)
      expect(m("h[a-b]llo", "hbllo")).toBe(true)
      expect(m("h[b-a]llo", "hallo")).toBe(true)
      expect(m("h[a-b]llo", "hcllo")).toBe(false)
      expect(m("k\\*", "k*")).toBe(true)
      expect(m("k\\*", "kx")).toBe(false)
      expect(m("k\\?", "k?")).toBe(true)
      expect(m("k\\[1]", "k[1]")).toBe(true)
      expect(m("k[\\]]", "k]")).toBe(true)
      expect(m("k\\\\", "k\\")).toBe(true)
      expect(m("exact", "exact")).toBe(true)
      expect(m("exact", "exactly")).toBe(false)
      expect(m("exact*", "exact")).toBe(true)
    })
  })
})
