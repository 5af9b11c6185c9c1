/**
 * Every value a row of the classification table matches, and what becomes of the command (`outcome`: whether a
 * retry may run it twice), which Classification.test.ts does not assert; how a message is matched (case-insensitive,
 * anchored where the row says "starts with"); and the shapes of what ioredis and Node throw (codes, names, replies,
 * non-errors).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Classification from "../src/Classification.js"

const sys = (code: string, message = `connect ${code}`) => Object.assign(new Error(message), { code })
const reply = (message: string) => Object.assign(new Error(message), { name: "ReplyError" })
const named = (name: string, message: string) => Object.assign(new Error(message), { name })

const expectClassified = (
  error: unknown,
  expected: { tag: "TransientError" | "PermanentError"; reason: string; outcome?: string },
  topology: "standalone" | "cluster" = "standalone"
) => {
  const c = Classification.classify("op", error, [], topology)
  expect({ tag: c._tag, reason: c.reason, ...(expected.outcome === undefined ? {} : { outcome: (c as { outcome?: string }).outcome }) })
    .toEqual({ tag: expected.tag, reason: expected.reason, ...(expected.outcome === undefined ? {} : { outcome: expected.outcome }) })
}

describe("Classification: every code of a row", () => {
  const codes: ReadonlyArray<readonly [string, string, string]> = [
    ["ECONNRESET", "connection_reset_peer", "unknown"],
    ["ECONNREFUSED", "connection_refused", "not_sent"],
    ["EPIPE", "broken_pipe", "unknown"],
    ["ETIMEDOUT", "timeout", "unknown"],
    ["EHOSTUNREACH", "host_unreachable", "not_sent"],
    ["ENETUNREACH", "host_unreachable", "not_sent"],
    ["ENETDOWN", "host_unreachable", "not_sent"],
    ["EHOSTDOWN", "host_unreachable", "not_sent"],
    ["ENOTFOUND", "dns", "not_sent"],
    ["EAI_AGAIN", "dns", "not_sent"]
  ]
  for (const [code, reason, outcome] of codes) {
    it(`${code}: transient ${reason}, outcome ${outcome}`, () => {
      expectClassified(sys(code), { tag: "TransientError", reason, outcome })
    })
  }

  const certificates = [
    "DEPTH_ZERO_SELF_SIGNED_CERT",
    "SELF_SIGNED_CERT_IN_CHAIN",
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "UNABLE_TO_GET_ISSUER_CERT",
    "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    "CERT_HAS_EXPIRED",
    "CERT_NOT_YET_VALID",
    "CERT_REVOKED",
    "CERT_UNTRUSTED",
    "CERT_REJECTED",
    "ERR_TLS_CERT_ALTNAME_INVALID"
  ]
  for (const code of certificates) {
    it(`${code}: permanent tls_certificate`, () => {
      expectClassified(sys(code, "certificate problem"), { tag: "PermanentError", reason: "tls_certificate" })
    })
  }

  it("a code no row knows falls through to the message rows, then to unknown", () => {
    expectClassified(sys("EWHATEVER", "Connection reset by peer"), { tag: "TransientError", reason: "connection_reset_peer" })
    expectClassified(sys("EWHATEVER", "something"), { tag: "TransientError", reason: "unknown", outcome: "unknown" })
    // A code that is not a string is no code.
    expectClassified(Object.assign(new Error("x"), { code: 104 }), { tag: "TransientError", reason: "unknown" })
  })
})

describe("Classification: every reply prefix of a row, and its outcome", () => {
  const replies: ReadonlyArray<readonly [string, "TransientError" | "PermanentError", string, string?]> = [
    ["LOADING Redis is loading the dataset in memory", "TransientError", "loading", "rejected"],
    ["BUSY Redis is busy running a script.", "TransientError", "busy", "rejected"],
    ["TRYAGAIN Multiple keys request during rehashing of slot", "TransientError", "try_again", "rejected"],
    ["CLUSTERDOWN The cluster is down", "TransientError", "cluster_down", "rejected"],
    ["MASTERDOWN Link with MASTER is down", "TransientError", "master_down", "rejected"],
    ["READONLY You can't write against a read only replica.", "TransientError", "read_only", "rejected"],
    ["OOM command not allowed when used memory > 'maxmemory'.", "TransientError", "out_of_memory", "rejected"],
    ["ERR max number of clients reached", "TransientError", "max_clients", "rejected"],
    ["ERR maximum number of clients reached", "TransientError", "max_clients", "rejected"],
    ["NOAUTH Authentication required.", "PermanentError", "auth"],
    ["WRONGPASS invalid username-password pair or user is disabled.", "PermanentError", "auth"],
    ["ERR invalid password", "PermanentError", "auth"],
    ["ERR AUTH <password> called without any password configured for the default user.", "PermanentError", "auth"],
    ["ERR invalid username-password pair", "PermanentError", "auth"],
    ["NOPERM this user has no permissions to run the 'set' command", "PermanentError", "no_permission"],
    ["WRONGTYPE Operation against a key holding the wrong kind of value", "PermanentError", "wrong_type"],
    ["EXECABORT Transaction discarded because of previous errors.", "PermanentError", "exec_abort"],
    ["CROSSSLOT Keys in request don't hash to the same slot", "PermanentError", "cross_slot"],
    ["MOVED 3999 127.0.0.1:6381", "PermanentError", "moved"],
    ["ASK 3999 127.0.0.1:6381", "PermanentError", "moved"],
    ["ERR unknown command 'FOO', with args beginning with:", "PermanentError", "unknown_command"],
    ["ERR syntax error", "PermanentError", "syntax"],
    ["ERR wrong number of arguments for 'set' command", "PermanentError", "syntax"],
    ["ERR value is not an integer or out of range", "PermanentError", "invalid_argument"],
    ["ERR invalid expire time in 'set' command", "PermanentError", "invalid_argument"],
    ["ERR increment or decrement would overflow: out of range", "PermanentError", "invalid_argument"]
  ]
  for (const [message, tag, reason, outcome] of replies) {
    it(`${message.split(" ").slice(0, 3).join(" ")}: ${tag} ${reason}`, () => {
      expectClassified(reply(message), { tag, reason, ...(outcome === undefined ? {} : { outcome }) })
    })
  }

  it("a prefix is the reply's first word, exactly: LOADINGX or a lower-case loading is no LOADING", () => {
    expectClassified(reply("LOADINGX something"), { tag: "PermanentError", reason: "command_error" })
    expectClassified(reply("loading the dataset"), { tag: "PermanentError", reason: "command_error" })
    expectClassified(reply("LOADING"), { tag: "TransientError", reason: "loading", outcome: "rejected" })
  })

  it("on a cluster, MOVED and ASK that reach the caller are transient try_again (rejected); elsewhere permanent", () => {
    expectClassified(reply("MOVED 3999 127.0.0.1:6381"), { tag: "TransientError", reason: "try_again", outcome: "rejected" }, "cluster")
    expectClassified(reply("ASK 3999 127.0.0.1:6381"), { tag: "TransientError", reason: "try_again", outcome: "rejected" }, "cluster")
    // The rest of the table still applies on a cluster.
    expectClassified(reply("WRONGTYPE x"), { tag: "PermanentError", reason: "wrong_type" }, "cluster")
    expectClassified(sys("ECONNREFUSED"), { tag: "TransientError", reason: "connection_refused", outcome: "not_sent" }, "cluster")
  })
})

describe("Classification: ioredis' and the topologies' messages, and their outcomes", () => {
  const messages: ReadonlyArray<readonly [unknown, "TransientError" | "PermanentError", string, string?]> = [
    [new Error("read: Connection reset by peer"), "TransientError", "connection_reset_peer", "unknown"],
    [new Error("Connection is closed."), "TransientError", "connection_closed", "unknown"],
    [new Error("Command aborted due to connection close"), "TransientError", "connection_closed", "unknown"],
    [new Error("Stream isn't writeable and enableOfflineQueue options is false"), "TransientError", "connection_unavailable", "not_sent"],
    [named("MaxRetriesPerRequestError", "Reached the max retries per request limit"), "TransientError", "connection_closed", "unknown"],
    [new Error("Command timed out"), "TransientError", "timeout", "unknown"],
    [new Error("Socket timeout. Expecting data"), "TransientError", "socket_timeout", "unknown"],
    [new Error("All sentinels are unreachable. Retrying from scratch after 10ms."), "TransientError", "host_unreachable", "not_sent"],
    [new Error("All sentinels are unreachable. Retrying from scratch after 10ms. Last error: NOAUTH Authentication required."), "PermanentError", "auth"],
    [new Error("Too many Cluster redirections. Last error: MOVED"), "TransientError", "cluster_down", "unknown"],
    [new Error("Failed to refresh slots cache."), "TransientError", "cluster_down", "not_sent"],
    [new Error("Cluster isn't ready and enableOfflineQueue options is false"), "TransientError", "connection_unavailable", "not_sent"],
    [new Error("None of startup nodes is available"), "TransientError", "host_unreachable", "not_sent"],
    [new Error("Cluster is ended."), "TransientError", "connection_closed", "not_sent"]
  ]
  for (const [error, tag, reason, outcome] of messages) {
    it(`${(error as Error).message.slice(0, 40)}: ${tag} ${reason}`, () => {
      expectClassified(error, { tag, reason, ...(outcome === undefined ? {} : { outcome }) })
    })
  }

  it("messages match whatever their case", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["CONNECTION RESET BY PEER", "connection_reset_peer"],
      ["connection is closed.", "connection_closed"],
      ["command aborted due to connection close", "connection_closed"],
      ["stream isn't writeable", "connection_unavailable"],
      ["command timed out", "timeout"],
      ["socket timeout", "socket_timeout"],
      ["all sentinels are unreachable.", "host_unreachable"],
      ["too many cluster redirections", "cluster_down"],
      ["failed to refresh slots cache", "cluster_down"],
      ["cluster isn't ready", "connection_unavailable"],
      ["none of startup nodes is available", "host_unreachable"],
      ["cluster is ended", "connection_closed"]
    ]
    for (const [message, reason] of cases) expectClassified(new Error(message), { tag: "TransientError", reason })
    expectClassified(new Error("ALL SENTINELS ARE UNREACHABLE. last error: wrongpass x"), { tag: "PermanentError", reason: "auth" })
    expectClassified(reply("err MAX NUMBER OF CLIENTS REACHED"), { tag: "TransientError", reason: "max_clients" })
    expectClassified(reply("err Unknown Command 'x'"), { tag: "PermanentError", reason: "unknown_command" })
    expectClassified(reply("err Syntax Error"), { tag: "PermanentError", reason: "syntax" })
    expectClassified(reply("err Value Is Not an integer"), { tag: "PermanentError", reason: "invalid_argument" })
    expectClassified(reply("ERR INVALID PASSWORD"), { tag: "PermanentError", reason: "auth" })
    // A name matches whatever its case, too.
    expectClassified(named("maxretriesperrequesterror", "x"), { tag: "TransientError", reason: "connection_closed" })
  })

  it("rows that say \"starts with\" do not match the words later in a message", () => {
    const later: ReadonlyArray<string> = [
      "x Connection is closed.",
      "x Command aborted due to connection close",
      "x Command timed out",
      "x Socket timeout",
      "x All sentinels are unreachable.",
      "x Too many Cluster redirections",
      "x Failed to refresh slots cache",
      "x Cluster isn't ready",
      "x None of startup nodes is available",
      "x Cluster is ended"
    ]
    for (const message of later) expectClassified(new Error(message), { tag: "TransientError", reason: "unknown" })
    expectClassified(reply("WRONGTYPE ERR unknown command"), { tag: "PermanentError", reason: "wrong_type" })
    expectClassified(reply("X ERR syntax error"), { tag: "PermanentError", reason: "command_error" })
    expectClassified(reply("X ERR value is not an integer"), { tag: "PermanentError", reason: "command_error" })
    expectClassified(reply("X ERR unknown command"), { tag: "PermanentError", reason: "command_error" })
    // The wrong-password rule of the sentinels needs both the start and the last error.
    expectClassified(new Error("x All sentinels are unreachable. Last error: WRONGPASS"), { tag: "TransientError", reason: "unknown" })
    expectClassified(new Error("All sentinels are unreachable. Last error: ECONNREFUSED"), { tag: "TransientError", reason: "host_unreachable" })
    // Words of an ERR reply that merely look alike.
    expectClassified(reply("ERR value is out of range, must be positive"), { tag: "PermanentError", reason: "invalid_argument" })
    expectClassified(reply("ERR syntax"), { tag: "PermanentError", reason: "command_error" })
  })
})

describe("Classification: the shapes of what is thrown", () => {
  it("non-errors: a string's text, a number, null, an object with a non-string message", () => {
    const fromString = Classification.classify("op", "Connection is closed.")
    expect(fromString).toMatchObject({ _tag: "TransientError", reason: "connection_closed", message: "Connection is closed." })
    expect(Classification.classify("op", 42)).toMatchObject({ reason: "unknown", message: "42" })
    expect(Classification.classify("op", null)).toMatchObject({ reason: "unknown", message: "null" })
    expect(Classification.classify("op", undefined)).toMatchObject({ reason: "unknown", message: "undefined" })
    expect(Classification.classify("op", { message: 7, name: 8, code: 9 })).toMatchObject({
      reason: "unknown",
      message: "[object Object]",
      cause: { name: "", code: undefined, message: "[object Object]", command: undefined }
    })
  })

  it("only a ReplyError is a reply: its first word is the prefix; an unknown reply is permanent command_error", () => {
    const error = Classification.classify("get", reply("ERR something new happened"))
    expect(error).toMatchObject({ _tag: "PermanentError", reason: "command_error", operation: "get", message: "ERR something new happened" })
    expect(Classification.classify("get", named("Error", "WRONGTYPE x"))).toMatchObject({ _tag: "TransientError", reason: "unknown" })
    const unknown = Classification.classify("get", new Error("weird"))
    expect(unknown).toMatchObject({ _tag: "TransientError", reason: "unknown", outcome: "unknown", message: "weird" })
  })

  it("the cause keeps the name, the code and the command name", () => {
    const error = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
      code: "ECONNREFUSED",
      command: { name: "get", args: ["k"] }
    })
    expect(Classification.classify("get", error).cause).toEqual({
      name: "Error",
      code: "ECONNREFUSED",
      message: "connect ECONNREFUSED 127.0.0.1:1",
      command: "get"
    })
    expect(Classification.classify("get", Object.assign(new Error("x"), { command: { name: 5 } })).cause).toMatchObject({
      command: undefined
    })
    expect(Classification.classify("get", Object.assign(new Error("x"), { command: null })).cause).toMatchObject({
      command: undefined
    })
  })

  it("scrub: every occurrence of every non-empty secret", () => {
    expect(Classification.scrub("a pw b pw c", ["pw"])).toBe("a <redacted> b <redacted> c")
    expect(Classification.scrub("a pw b xy", ["pw", "xy"])).toBe("a <redacted> b <redacted>")
    expect(Classification.scrub("abc", [""])).toBe("abc")
    expect(Classification.scrub("abc", [])).toBe("abc")
    // Secrets are scrubbed from the message a classified error keeps, and matching still reads the original.
    const classified = Classification.classify("connect", reply("WRONGPASS for hunter2"), ["hunter2"])
    expect(classified).toMatchObject({ reason: "auth", message: "WRONGPASS for <redacted>" })
  })
})
