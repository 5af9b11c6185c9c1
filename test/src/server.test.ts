/**
 * Faults on the server side: killed and restarted, CLIENT KILL, LOADING, BUSY, OOM, max clients.
 */
import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, Workload } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Net from "node:net"
import {
  expectHeld,
  FAILURE_THRESHOLD,
  FAST_FAIL_P99_MS,
  FIRST_RECONNECT_MAX_MS,
  info,
  LAG_MS,
  nextTransition,
  RECOVERY_BOUND_CONNECTED_MS,
  RECOVERY_BOUND_MS,
  recovery,
  RETRY_FIRST_DELAY_MAX_MS,
  scenario,
  startCounter,
  TICK_MS,
  transitionFigures,
  waitUntil,
  workloadFigures,
  workloadOptions
} from "./support/harness.js"

/** A Redis error reply (RedisServer.command returns error replies as values). */
const isErrorReply = (reply: unknown, prefix: string) =>
  typeof reply === "object" && reply !== null && "message" in reply && String(reply.message).startsWith(prefix)

/** A raw connection that answered one PING: the server has registered it as a client. */
const rawClient = (port: number) =>
  Effect.async<Net.Socket, Error>((resume) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    let reply = ""
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.on("connect", () => socket.write("PING\r\n"))
    socket.on("data", (chunk: Buffer) => {
      reply += chunk.toString("utf8")
      if (reply.startsWith("+PONG\r\n")) resume(Effect.succeed(socket))
      else if (reply.includes("\r\n")) resume(Effect.fail(new Error(`raw client: ${reply.trim()}`)))
    })
  }).pipe(Effect.timeout(Duration.seconds(2)), Effect.orDie)

describe("chaos: server faults", () => {
  it.live("server killed (SIGKILL) and restarted on the same port", () =>
    scenario(
      "kill-restart",
      {},
      (stack) =>
        Effect.gen(function*() {
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          yield* Effect.sleep("1 second")
          const baseline = yield* workload.window
          const mark = stack.transitions.length
          const killedAt = Date.now()
          yield* stack.server.kill
          const opened = yield* nextTransition(stack, "OPEN", mark, 1000)
          yield* Effect.sleep(Duration.millis(RETRY_FIRST_DELAY_MAX_MS + TICK_MS + LAG_MS))
          yield* workload.window
          yield* Effect.sleep("1500 millis")
          const down = yield* workload.window
          const mark2 = stack.transitions.length
          yield* stack.server.start
          // `start` returns once the new process answers INFO: the server serves from here on.
          const servingAt = Date.now()
          const recovered = yield* recovery(stack, mark2, servingAt)
          const fallbacksAtClose = (yield* stack.cache.stats).fallbacks
          yield* Effect.sleep("500 millis")
          const after = yield* workload.window
          const stats = yield* stack.cache.stats
          return {
            workload: workloadFigures(yield* workload.stats),
            baseline: workloadFigures(baseline),
            outage: workloadFigures(down),
            afterRecovery: workloadFigures(after),
            openedAtFailures: opened?.consecutiveFailures ?? null,
            openedAfterMs: opened ? opened.at - killedAt : null,
            ...recovered,
            fallbacks: stats.fallbacks,
            fallbacksAfterRecovery: stats.fallbacks - fallbacksAtClose,
            circuitOpens: stats.circuitOpens,
            cacheErrors: stats.errors,
            transitions: transitionFigures(stack, killedAt),
            proxy: yield* stack.proxy.stats
          }
        }),
      (f) => {
        expectHeld(f.workload)
        // A dead server is noticed fast (reset / refused, no deadline to wait for). The calls in flight at the kill
        // fail together and count once; the calls made during the first reconnect attempt (0-20 ms after the drop,
        // refused at once) wait for it and fail together with it; readers then sleep out their first retry delay, and
        // the failures after it (fast, one after another) reach the threshold: within the first reconnect attempt and
        // one retry delay, plus the margin.
        expect(f.openedAtFailures).toBe(FAILURE_THRESHOLD)
        expect(f.openedAfterMs!).toBeLessThanOrEqual(FIRST_RECONNECT_MAX_MS + RETRY_FIRST_DELAY_MAX_MS + LAG_MS)
        expect(f.outage.ops).toBeGreaterThan(1000)
        expect(f.outage.p99Ms).toBeLessThanOrEqual(FAST_FAIL_P99_MS)
        expect(f.recoveryMs).not.toBeNull()
        expect(f.recoveryMs!).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
        expect(f.fallbacksAfterRecovery).toBe(0)
        expect(f.leftoverResources).toEqual({})
      }
    ))

  it.live("CLIENT KILL mid-traffic (3 times), with a non-idempotent counter", () =>
    scenario(
      "client-kill",
      {},
      (stack) =>
        Effect.gen(function*() {
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          const counter = yield* startCounter(stack.connection, "counter")
          yield* Effect.sleep("800 millis")
          yield* workload.window
          const killed: Array<unknown> = []
          let lastKillAt = 0
          let mark = 0
          for (let i = 0; i < 3; i++) {
            mark = stack.transitions.length
            lastKillAt = Date.now()
            // SKIPME yes (the default): the command's own connection survives; ours (via the proxy) does not.
            killed.push(yield* stack.server.command("CLIENT", "KILL", "TYPE", "normal"))
            yield* Effect.sleep("600 millis")
          }
          const recovered = yield* recovery(stack, mark, lastKillAt)
          yield* Effect.sleep("200 millis")
          const result = yield* counter.stop
          const counted = Number(yield* stack.server.command("GET", "counter"))
          const stats = yield* stack.cache.stats
          return {
            workload: workloadFigures(yield* workload.stats),
            killedClients: killed,
            recoveryAfterLastKillMs: recovered.recoveryMs,
            failedProbesAfterLastKill: recovered.failedProbesAfterHeal,
            openedAtFailures: stack.transitions.filter((t) => t.from === "CLOSED" && t.to === "OPEN").map((t) => t.consecutiveFailures),
            fallbacks: stats.fallbacks,
            circuitOpens: stats.circuitOpens,
            cacheErrors: stats.errors,
            counter: { ...result, serverValue: counted, executedButFailed: counted - result.successes },
            proxy: yield* stack.proxy.stats
          }
        }),
      (f) => {
        expect(f.killedClients.every((n) => typeof n === "number" && n >= 1)).toBe(true)
        expectHeld(f.workload)
        expect(f.counter.successes).toBeGreaterThan(0)
        expect(f.counter.serverValue).toBeGreaterThanOrEqual(f.counter.successes)
        // Only a failure whose outcome is unknown may have run: S <= C <= S + F(may have run).
        expect(f.counter.serverValue).toBeLessThanOrEqual(f.counter.successes + f.counter.mayHaveRun)
        for (const failures of f.openedAtFailures) expect(failures).toBe(FAILURE_THRESHOLD)
        expect(f.recoveryAfterLastKillMs).not.toBeNull()
        expect(f.recoveryAfterLastKillMs!).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
        expect(f.leftoverResources).toEqual({})
      }
    ))
  it.live("LOADING: restart with a dataset to load, then DEBUG RELOAD under a connected client", () =>
    scenario(
      "loading",
      // The load is slowed to ~2 s for 20,000 keys (key-load-delay, in microseconds per key), and the server
      // answers clients every KiB of RDB read (instead of every 2 MiB), so clients get LOADING instead of silence.
      { server: { config: ["key-load-delay 20", "loading-process-events-interval-bytes 1024"] } },
      (stack) =>
        Effect.gen(function*() {
          const { connection, server } = stack
          yield* server.command("DEBUG", "POPULATE", "20000", "pop", "64")
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          yield* Effect.sleep("1 second")
          // `save ""` (RedisServer's default) only turns off automatic snapshots: an explicit SAVE writes dump.rdb,
          // which the restarted server loads.
          const saved = yield* server.command("SAVE")
          yield* workload.window

          /** What a direct GET on the connection fails with, sampled every 50 ms while `until` is false. */
          const sampleReasons = (seen: Record<string, number>) =>
            Effect.gen(function*() {
              while (true) {
                const r = yield* Effect.either(connection.get("chaos:sample"))
                const key = r._tag === "Left" ? r.left.reason : "ok"
                seen[key] = (seen[key] ?? 0) + 1
                yield* Effect.sleep("50 millis")
              }
            })
          const loadingReply = Effect.map(server.command("GET", "chaos:sample"), (r) => isErrorReply(r, "LOADING"))

          // Phase A: restart. `start` returns as soon as the new process answers INFO, i.e. while it loads.
          const markA = stack.transitions.length
          const restartAt = Date.now()
          const seenA: Record<string, number> = {}
          const samplerA = yield* Effect.fork(sampleReasons(seenA))
          yield* server.restart
          const restartedAt = Date.now()
          const infoCallsBefore = Number((/calls=(\d+)/.exec((yield* info(server, "commandstats"))["cmdstat_info"] ?? "") ?? [])[1] ?? 0)
          const loadedAfter = yield* waitUntil(Effect.map(loadingReply, (l) => !l), 10_000, 20)
          const loadedAt = Date.now()
          const infoCallsLoading = Number((/calls=(\d+)/.exec((yield* info(server, "commandstats"))["cmdstat_info"] ?? "") ?? [])[1] ?? 0) - infoCallsBefore
          const recoveredA = yield* recovery(stack, markA, loadedAt, 12_000)
          yield* Fiber.interrupt(samplerA)
          const statsA = yield* stack.cache.stats
          const phaseA = {
            loadingMs: loadedAfter === undefined ? null : loadedAt - restartedAt,
            restartMs: restartedAt - restartAt,
            recoveryAfterLoadedMs: recoveredA.recoveryMs,
            failedProbesAfterLoaded: recoveredA.failedProbesAfterHeal,
            connectionSaw: seenA,
            infoCallsWhileLoading: infoCallsLoading,
            cacheErrors: statsA.errors,
            transitions: transitionFigures(stack, restartAt).slice(markA)
          }

          // Phase B: DEBUG RELOAD (save + load in place): the connected socket stays up and gets LOADING replies.
          yield* Effect.sleep("300 millis")
          const markB = stack.transitions.length
          const reloadAt = Date.now()
          const seenB: Record<string, number> = {}
          const samplerB = yield* Effect.fork(sampleReasons(seenB))
          const reloaded = yield* server.command("DEBUG", "RELOAD")
          const reloadedAt = Date.now()
          const openedB = stack.transitions.slice(markB).find((t) => t.to === "OPEN")
          const recoveredB = yield* recovery(stack, markB, reloadedAt)
          yield* Fiber.interrupt(samplerB)
          const stats = yield* stack.cache.stats
          const phaseB = {
            reloadMs: reloadedAt - reloadAt,
            opened: openedB !== undefined,
            openedAtFailures: openedB?.consecutiveFailures ?? null,
            recoveryAfterReloadMs: openedB === undefined ? null : recoveredB.recoveryMs,
            failedProbesAfterReload: recoveredB.failedProbesAfterHeal,
            connectionSaw: seenB,
            transitions: transitionFigures(stack, reloadAt).slice(markB)
          }
          return {
            saved,
            reloaded,
            workload: workloadFigures(yield* workload.stats),
            restart: phaseA,
            debugReload: phaseB,
            fallbacks: stats.fallbacks,
            circuitOpens: stats.circuitOpens,
            cacheErrors: stats.errors
          }
        }),
      (f) => {
        expect(f.saved).toBe("OK")
        expect(f.reloaded).toBe("OK")
        expectHeld(f.workload)
        // The restart really loaded for a while (so the client had something to see).
        expect(f.restart.loadingMs!).toBeGreaterThanOrEqual(1000)
        expect(f.restart.recoveryAfterLoadedMs).not.toBeNull()
        expect(f.restart.recoveryAfterLoadedMs!).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
        // In place, the connected socket sees LOADING (transient): the breaker opens and closes after halfOpenAfter
        // plus one probe once the load is over (the socket never dropped: no reconnect delay to add).
        expect(f.debugReload.connectionSaw["loading"] ?? 0).toBeGreaterThan(0)
        expect(f.debugReload.opened).toBe(true)
        expect(f.debugReload.openedAtFailures).toBe(FAILURE_THRESHOLD)
        expect(f.debugReload.recoveryAfterReloadMs!).toBeLessThanOrEqual(RECOVERY_BOUND_CONNECTED_MS)
        expect(f.leftoverResources).toEqual({})
      }
    ))

  it.live("BUSY: a long script (busy-reply-threshold 100 ms), then SCRIPT KILL", () =>
    scenario(
      "busy-script",
      { server: { config: ["busy-reply-threshold 100"] } },
      (stack) =>
        Effect.gen(function*() {
          const { connection, server } = stack
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          yield* Effect.sleep("1 second")
          yield* workload.window
          const mark = stack.transitions.length
          const startedAt = Date.now()
          // From a raw connection of its own: it blocks until killed (RedisServer.command's own bound is 5 s).
          const script = yield* Effect.fork(server.command("EVAL", "while true do end", "0"))
          yield* Effect.sleep("300 millis")
          const sampled = yield* Effect.either(connection.get("chaos:sample"))
          yield* Effect.sleep("1200 millis")
          const busy = yield* workload.window
          const markKill = stack.transitions.length
          const killReply = yield* server.command("SCRIPT", "KILL")
          const killedAt = Date.now()
          const scriptReply = yield* Fiber.join(script)
          const opened = stack.transitions.slice(mark).find((t) => t.to === "OPEN")
          const recovered = yield* recovery(stack, markKill, killedAt)
          const stats = yield* stack.cache.stats
          return {
            killReply,
            scriptReply,
            connectionSaw: sampled._tag === "Left" ? `${sampled.left._tag}/${sampled.left.reason}` : "ok",
            workload: workloadFigures(yield* workload.stats),
            whileBusy: workloadFigures(busy),
            openedAtFailures: opened?.consecutiveFailures ?? null,
            openedAfterMs: opened ? opened.at - startedAt : null,
            recoveryAfterKillMs: recovered.recoveryMs,
            failedProbesAfterKill: recovered.failedProbesAfterHeal,
            fallbacks: stats.fallbacks,
            circuitOpens: stats.circuitOpens,
            cacheErrors: stats.errors,
            transitions: transitionFigures(stack, startedAt)
          }
        }),
      (f) => {
        expect(f.killReply).toBe("OK")
        expect(isErrorReply(f.scriptReply, "ERR")).toBe(true)
        expect(f.connectionSaw).toBe("TransientError/busy")
        expectHeld(f.workload)
        expect(f.openedAtFailures).toBe(FAILURE_THRESHOLD)
        expect(f.whileBusy.p99Ms).toBeLessThanOrEqual(FAST_FAIL_P99_MS)
        // The socket stayed up (BUSY is a reply): halfOpenAfter plus one probe.
        expect(f.recoveryAfterKillMs).not.toBeNull()
        expect(f.recoveryAfterKillMs!).toBeLessThanOrEqual(RECOVERY_BOUND_CONNECTED_MS)
        expect(f.leftoverResources).toEqual({})
      }
    ))

  it.live("OOM: writes refused under maxmemory (noeviction)", () =>
    scenario(
      "oom",
      { server: { config: ["maxmemory-policy noeviction"] } },
      (stack) =>
        Effect.gen(function*() {
          const { connection, server } = stack
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          yield* Effect.sleep("1 second")
          yield* workload.window
          const before = yield* stack.cache.stats
          // Any limit below what the server already uses: every write (a `denyoom` command) is refused, reads work.
          const limited = yield* server.command("CONFIG", "SET", "maxmemory", "1")
          const sampledWrite = yield* Effect.either(connection.set("chaos:sample", "x", Option.none()))
          yield* Effect.sleep("2 seconds")
          const oom = yield* workload.window
          const during = yield* stack.cache.stats
          const mark = stack.transitions.length
          yield* server.command("CONFIG", "SET", "maxmemory", "0")
          const liftedAt = Date.now()
          const recovered = yield* recovery(stack, mark, liftedAt)
          const fallbacksAtClose = (yield* stack.cache.stats).fallbacks
          yield* Effect.sleep("500 millis")
          const stats = yield* stack.cache.stats
          return {
            limited,
            connectionSaw: sampledWrite._tag === "Left" ? `${sampledWrite.left._tag}/${sampledWrite.left.reason}` : "ok",
            workload: workloadFigures(yield* workload.stats),
            duringOom: workloadFigures(oom),
            oomErrors: (during.errors["out_of_memory"] ?? 0) - (before.errors["out_of_memory"] ?? 0),
            fallbacksDuringOom: during.fallbacks - before.fallbacks,
            circuitOpens: stats.circuitOpens,
            openedAtFailures: stack.transitions.filter((t) => t.from === "CLOSED" && t.to === "OPEN").map((t) => t.consecutiveFailures),
            ...recovered,
            fallbacksAfterRecovery: stats.fallbacks - fallbacksAtClose,
            cacheErrors: stats.errors
          }
        }),
      (f) => {
        expect(f.limited).toBe("OK")
        expect(f.connectionSaw).toBe("TransientError/out_of_memory")
        expect(f.oomErrors).toBeGreaterThan(0)
        expectHeld(f.workload)
        // Reads keep succeeding while writes are refused: each success resets the count, so the breaker stays closed
        // and reads keep coming from Redis; only the refused writes fall back to memory.
        expect(f.circuitOpens).toBe(0)
        expect(f.fallbacksDuringOom).toBe(f.oomErrors)
        expect(f.recoveryMs).not.toBeNull()
        expect(f.recoveryMs!).toBeLessThanOrEqual(RECOVERY_BOUND_CONNECTED_MS)
        // Writes already in flight when the limit was lifted may still be refused: at most one per worker.
        expect(f.fallbacksAfterRecovery).toBeLessThanOrEqual(workloadOptions.concurrency ?? 0)
        expect(f.leftoverResources).toEqual({})
      }
    ))
  it.live("max clients reached: the client cannot reconnect until slots free up", () =>
    scenario(
      "max-clients",
      { server: { config: ["maxclients 4"] } },
      (stack) =>
        Effect.gen(function*() {
          const { connection, proxy, server } = stack
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          yield* Effect.sleep("1 second")
          yield* workload.window
          // Drop our socket while the proxy refuses, so the freed slot can be taken before the client reconnects.
          yield* proxy.setFault(ChaosProxy.Refuse())
          yield* proxy.resetConnections
          const alone = yield* waitUntil(
            Effect.map(info(server, "clients"), (r) => r["connected_clients"] === "1"),
            2000,
            20
          )
          // Take every slot with idle raw connections (each answered a PING, so the server registered it).
          const fillers = yield* Effect.acquireRelease(
            Effect.forEach(Array.from({ length: 4 }), () => rawClient(server.port)),
            (sockets) => Effect.sync(() => sockets.forEach((s) => s.destroy()))
          )
          const refused = yield* server.command("PING")
          const fullAt = Date.now()
          const acceptedBefore = (yield* proxy.stats).accepted
          yield* proxy.setFault(ChaosProxy.PassThrough())
          yield* Effect.sleep("300 millis")
          const sampled = yield* Effect.either(connection.get("chaos:sample"))
          yield* Effect.sleep("1700 millis")
          const full = yield* workload.window
          const reconnectAttempts = (yield* proxy.stats).accepted - acceptedBefore
          const markFree = stack.transitions.length
          const freedAt = Date.now()
          fillers.forEach((s) => s.end())
          const recovered = yield* recovery(stack, markFree, freedAt)
          const fallbacksAtClose = (yield* stack.cache.stats).fallbacks
          yield* Effect.sleep("300 millis")
          const stats = yield* stack.cache.stats
          return {
            aloneAfterMs: alone === undefined ? null : Math.round(alone),
            refused,
            connectionSaw: sampled._tag === "Left" ? `${sampled.left._tag}/${sampled.left.reason}` : "ok",
            workload: workloadFigures(yield* workload.stats),
            whileFull: workloadFigures(full),
            reconnectAttemptsIn2s: reconnectAttempts,
            recoveryAfterFreedMs: recovered.recoveryMs,
            failedProbesAfterFreed: recovered.failedProbesAfterHeal,
            fallbacksAfterRecovery: stats.fallbacks - fallbacksAtClose,
            fallbacks: stats.fallbacks,
            circuitOpens: stats.circuitOpens,
            cacheErrors: stats.errors,
            transitions: transitionFigures(stack, fullAt)
          }
        }),
      (f) => {
        expect(f.aloneAfterMs).not.toBeNull()
        expect(isErrorReply(f.refused, "ERR max number of clients reached")).toBe(true)
        expect(f.connectionSaw.startsWith("TransientError/")).toBe(true)
        expectHeld(f.workload)
        expect(f.whileFull.p99Ms).toBeLessThanOrEqual(FAST_FAIL_P99_MS)
        // No reconnect storm: ioredis' backoff (50 ms doubling to ~0.5 s) allows about 7 attempts in 2 s.
        expect(f.reconnectAttemptsIn2s).toBeGreaterThanOrEqual(1)
        expect(f.reconnectAttemptsIn2s).toBeLessThanOrEqual(10)
        expect(f.recoveryAfterFreedMs).not.toBeNull()
        expect(f.recoveryAfterFreedMs!).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
        expect(f.fallbacksAfterRecovery).toBe(0)
        expect(f.leftoverResources).toEqual({})
      }
    ))
})
