import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { parseArgs } from "../src/demo/args.js"
import { isAlive, runDemo } from "../src/demo/run.js"

const required = ["ops", "callerErrors", "wrongValues", "staleReads", "fallbacks", "breakerOpens", "p99Ms", "recovered"] as const

// The demo's main logic, in-process and shortened: a spawned redis-server behind a ChaosProxy, Steadfast, Steadfast's
// hybrid cache and a default ioredis client under the same resets, stall and server restart.
describe("the chaos demo", () => {
  it.live("Steadfast shows no read errors, no wrong values and no stale reads, recovers, and nothing is left behind", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const summary = yield* runDemo({ duration: 8, print: (line) => lines.push(line) })
      const output = lines.join("\n")

      expect(summary.mode, output).toBe("spawned")
      const steadfast = summary.clients.steadfast
      expect(steadfast.readErrors, output).toBe(0)
      expect(steadfast.wrongValues, output).toBe(0)
      expect(steadfast.staleReads, output).toBe(0)
      // ioredis' stale reads are only reported (the table's "stale reads" row), not asserted.
      expect(typeof summary.clients.ioredis?.staleReads).toBe("number")
      expect(steadfast.recovered, output).toBe(true)
      expect(steadfast.ops).toBeGreaterThan(0)
      // The hybrid client (L1 + Redis): the same guarantees, and its L1 hit ratio.
      const hybrid = summary.clients.hybrid!
      expect(hybrid, output).toBeDefined()
      expect(hybrid.readErrors, output).toBe(0)
      expect(hybrid.wrongValues, output).toBe(0)
      expect(hybrid.staleReads, output).toBe(0)
      expect(hybrid.recovered, output).toBe(true)
      expect(hybrid.ops).toBeGreaterThan(0)
      expect(hybrid.l1HitRatio, output).toBeGreaterThan(0)
      expect(summary.verdict.steadfastHeld, output).toBe(true)
      expect(output).toMatch(/^\s+hybrid\s+[\d,]+/m)
      expect(output).toContain("L1 hit ratio")
      expect(output).toContain("Steadfast hybrid held")

      // The JSON summary has the required fields for both clients.
      const json = JSON.parse(JSON.stringify(summary)) as { clients: Record<string, Record<string, unknown>> }
      for (const client of ["steadfast", "ioredis", "hybrid"]) {
        for (const field of required) expect(json.clients[client], `${client}.${field}`).toHaveProperty(field)
        expect(typeof json.clients[client]!["ops"]).toBe("number")
        expect(typeof json.clients[client]!["recovered"]).toBe("boolean")
      }
      expect(typeof json.clients["hybrid"]!["l1HitRatio"]).toBe("number")
      for (const row of summary.series) expect(row.clients["hybrid"], `row ${row.t}`).toHaveProperty("l1HitRate")
      expect(summary.faults.map((f) => f.fault)).toEqual(["reset all", "repeated resets", "stall", "redis kill+restart"])
      expect(summary.series.length).toBe(8)

      // No redis-server left: both processes (the first one and the one restarted after the kill) are gone once
      // runDemo has returned.
      expect(summary.redis.pids).toHaveLength(2)
      expect(summary.redis.pid).toBe(summary.redis.pids[1])
      expect(summary.redis.pidAliveAfterExit).toBe(false)
      for (const pid of summary.redis.pids) expect(isAlive(pid), `redis-server ${pid}`).toBe(false)
      expect(output).toContain("Summary")
    }), 25_000)

  it.live("--topology cluster: a graceful failover, a primary killed and its return; Steadfast holds, no process left", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const summary = yield* runDemo({ duration: 10, topology: "cluster", recoveryGrace: 3, print: (line) => lines.push(line) })
      const output = lines.join("\n")

      expect(summary.topology, output).toBe("cluster")
      expect(summary.mode, output).toBe("spawned")
      expect(summary.faults.map((f) => f.fault)).toEqual(["graceful failover", "primary killed", "old primary returns"])
      expect(output).not.toContain("FAILED")
      expect(output).toContain("is a replica now")
      const steadfast = summary.clients.steadfast
      expect(steadfast.readErrors, output).toBe(0)
      expect(steadfast.writeErrors, output).toBe(0)
      expect(steadfast.wrongValues, output).toBe(0)
      expect(steadfast.staleReads, output).toBe(0)
      expect(steadfast.recovered, output).toBe(true)
      expect(typeof summary.clients.ioredis?.callerErrors).toBe("number")
      // No hybrid client on a cluster.
      expect(summary.clients.hybrid).toBeUndefined()
      // Six nodes, and the killed one's new process.
      expect(summary.redis.pids).toHaveLength(7)
      expect(summary.redis.pidAliveAfterExit).toBe(false)
      for (const pid of summary.redis.pids) expect(isAlive(pid), `redis-server ${pid}`).toBe(false)
    }), 40_000)

  it("--topology takes standalone (the default), cluster or sentinel", () => {
    expect(parseArgs([])).toMatchObject({ ok: true, options: { topology: "standalone" } })
    expect(parseArgs(["--topology", "cluster"])).toMatchObject({ ok: true, options: { topology: "cluster" } })
    expect(parseArgs(["--topology=sentinel"])).toMatchObject({ ok: true, options: { topology: "sentinel" } })
    expect(parseArgs(["--topology", "proxy"]).ok).toBe(false)
  })
})
