import { describe, expect, it } from "@effect/vitest"
import { Errors } from "@steadfast/resilience"
import * as Classification from "../src/Classification.js"

const sys = (code: string, message: string) => Object.assign(new Error(message), { code })
const reply = (message: string, command?: { name: string; args: Array<string> }) =>
  Object.assign(new Error(message), { name: "ReplyError", ...(command ? { command } : {}) })
const named = (name: string, message: string) => Object.assign(new Error(message), { name })

type Case = readonly [label: string, error: unknown, tag: "TransientError" | "PermanentError", reason: string]

// One case (at least) per row of the table, with the shapes ioredis and Node really produce.
const cases: ReadonlyArray<Case> = [
  ["ECONNRESET (read)", sys("ECONNRESET", "read ECONNRESET"), "TransientError", "connection_reset_peer"],
  ["Connection reset by peer (text only)", new Error("Connection reset by peer"), "TransientError", "connection_reset_peer"],
  ["ECONNREFUSED", sys("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:6390"), "TransientError", "connection_refused"],
  ["EPIPE", sys("EPIPE", "write EPIPE"), "TransientError", "broken_pipe"],
  ["ETIMEDOUT (connect timeout)", sys("ETIMEDOUT", "connect ETIMEDOUT"), "TransientError", "timeout"],
  ["EHOSTUNREACH", sys("EHOSTUNREACH", "connect EHOSTUNREACH 10.0.0.1:6379"), "TransientError", "host_unreachable"],
  ["ENOTFOUND", sys("ENOTFOUND", "getaddrinfo ENOTFOUND redis.invalid"), "TransientError", "dns"],
  ["self-signed certificate", sys("DEPTH_ZERO_SELF_SIGNED_CERT", "self-signed certificate"), "PermanentError", "tls_certificate"],
  ["unknown CA", sys("UNABLE_TO_VERIFY_LEAF_SIGNATURE", "unable to verify the first certificate"), "PermanentError", "tls_certificate"],
  ["Connection is closed.", new Error("Connection is closed."), "TransientError", "connection_closed"],
  ["in-flight aborted on close", new Error("Command aborted due to connection close"), "TransientError", "connection_closed"],
  ["offline queue disabled", new Error("Stream isn't writeable and enableOfflineQueue options is false"), "TransientError", "connection_unavailable"],
  ["in-flight flushed on close", named("MaxRetriesPerRequestError", "Reached the max retries per request limit (which is 0)."), "TransientError", "connection_closed"],
  ["ioredis commandTimeout", new Error("Command timed out"), "TransientError", "timeout"],
  ["ioredis socketTimeout", new Error("Socket timeout. Expecting data, but didn't receive any in 2000ms."), "TransientError", "socket_timeout"],
  // Sentinel (ioredis' SentinelConnector and its failover detector)
  ["all sentinels unreachable (refused)", new Error("All sentinels are unreachable. Retrying from scratch after 57ms. Last error: connect ECONNREFUSED 127.0.0.1:26379"), "TransientError", "host_unreachable"],
  ["all sentinels unreachable (no master of that name)", new Error("All sentinels are unreachable. Retrying from scratch after 57ms."), "TransientError", "host_unreachable"],
  ["all sentinels unreachable (wrong sentinel password)", new Error("All sentinels are unreachable. Retrying from scratch after 57ms. Last error: WRONGPASS invalid username-password pair or user is disabled."), "PermanentError", "auth"],
  ["failover detector's disconnect (in flight)", named("MaxRetriesPerRequestError", "Reached the max retries per request limit (which is 0). Refer to \"maxRetriesPerRequest\" option for details."), "TransientError", "connection_closed"],
  ["connect cut short by the failover detector", new Error("Connection is closed."), "TransientError", "connection_closed"],
  ["LOADING", reply("LOADING Redis is loading the dataset in memory"), "TransientError", "loading"],
  ["BUSY", reply("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."), "TransientError", "busy"],
  ["TRYAGAIN", reply("TRYAGAIN Multiple keys request during rehashing of slot"), "TransientError", "try_again"],
  ["CLUSTERDOWN", reply("CLUSTERDOWN The cluster is down"), "TransientError", "cluster_down"],
  ["MASTERDOWN", reply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), "TransientError", "master_down"],
  ["READONLY (failover)", reply("READONLY You can't write against a read only replica."), "TransientError", "read_only"],
  ["OOM", reply("OOM command not allowed when used memory > 'maxmemory'."), "TransientError", "out_of_memory"],
  ["max clients", reply("ERR max number of clients reached"), "TransientError", "max_clients"],
  ["NOAUTH", reply("NOAUTH Authentication required."), "PermanentError", "auth"],
  ["WRONGPASS", reply("WRONGPASS invalid username-password pair or user is disabled."), "PermanentError", "auth"],
  ["ERR invalid password (Redis 5)", reply("ERR invalid password"), "PermanentError", "auth"],
  ["NOPERM", reply("NOPERM this user has no permissions to run the 'get' command"), "PermanentError", "no_permission"],
  ["WRONGTYPE", reply("WRONGTYPE Operation against a key holding the wrong kind of value"), "PermanentError", "wrong_type"],
  ["EXECABORT", reply("EXECABORT Transaction discarded because of previous errors."), "PermanentError", "exec_abort"],
  ["CROSSSLOT", reply("CROSSSLOT Keys in request don't hash to the same slot"), "PermanentError", "cross_slot"],
  ["MOVED on a standalone client", reply("MOVED 3999 127.0.0.1:6381"), "PermanentError", "moved"],
  ["unknown command", reply("ERR unknown command 'FOO', with args beginning with: "), "PermanentError", "unknown_command"],
  ["syntax error", reply("ERR syntax error"), "PermanentError", "syntax"],
  ["wrong number of arguments", reply("ERR wrong number of arguments for 'get' command"), "PermanentError", "syntax"],
  ["not an integer", reply("ERR value is not an integer or out of range"), "PermanentError", "invalid_argument"],
  // Fallbacks, outside the table
  ["an error reply no row knows", reply("ERR something new"), "PermanentError", "command_error"],
  ["a JS error no row knows", new TypeError("x is not a function"), "TransientError", "unknown"],
  ["a thrown string", "boom", "TransientError", "unknown"]
]

describe("Classification", () => {
  for (const [label, error, tag, reason] of cases) {
    it(`${label} -> ${tag} ${reason}`, () => {
      const classified = Classification.classify("get", error)
      expect(classified._tag).toBe(tag)
      expect(classified.reason).toBe(reason)
      expect(classified.operation).toBe("get")
    })
  }

  it("every row of the table is exercised by a case above", () => {
    // A row no case reaches first is either dead or untested.
    const firstRow = (error: unknown) => {
      const c = Classification.classify("x", error)
      return Classification.rules.findIndex((r) => r.kind === (c._tag === "TransientError" ? "transient" : "permanent") && r.reason === c.reason)
    }
    const reached = new Set(cases.map(([, error]) => firstRow(error)))
    const reasons = new Set(Classification.rules.map((r) => `${r.kind}:${r.reason}`))
    const covered = new Set(cases.map(([, , tag, reason]) => `${tag === "TransientError" ? "transient" : "permanent"}:${reason}`))
    expect([...reasons].filter((r) => !covered.has(r))).toEqual([])
    expect(reached.has(-1)).toBe(true) // the fallback cases
  })

  it("already-classified errors pass through untouched", () => {
    const e = new Errors.TransientError({ operation: "get", reason: "timeout", message: "t" })
    expect(Classification.classify("other", e)).toBe(e)
  })

  it("scrubs secrets from the message and never keeps command arguments", () => {
    const error = reply("WRONGPASS invalid username-password pair for s3cr3t-pw", {
      name: "hello",
      args: ["3", "AUTH", "default", "s3cr3t-pw"]
    })
    const classified = Classification.classify("connect", error, ["s3cr3t-pw"])
    expect(classified.message).not.toContain("s3cr3t-pw")
    expect(JSON.stringify(classified)).not.toContain("s3cr3t-pw")
    expect(classified.cause).toEqual({
      name: "ReplyError",
      code: undefined,
      message: "WRONGPASS invalid username-password pair for <redacted>",
      command: "hello"
    })
  })

  it("a reply prefix only matches real error replies, not socket errors with the same words", () => {
    expect(Classification.classify("get", new Error("LOADING something")).reason).toBe("unknown")
  })
})
