/**
 * Turns any failure of ioredis, Node's sockets or a Redis reply into `TransientError | PermanentError`.
 *
 * The knowledge is a table ({@link rules}) read top to bottom by one function ({@link classify}); each row is
 * tested on its own. Add a row, not an `if`.
 *
 * @since 0.1.0
 */
import { Errors } from "@steadfast/resilience"

/**
 * How a row recognises a failure. Every given field must match.
 *
 * @since 0.1.0
 * @category models
 */
export interface Match {
  /** Node's `error.code` (`ECONNRESET`, `DEPTH_ZERO_SELF_SIGNED_CERT`, ...). */
  readonly code?: ReadonlyArray<string>
  /** The first word of a Redis error reply (`LOADING`, `WRONGTYPE`, ...). */
  readonly replyPrefix?: ReadonlyArray<string>
  /** A case-insensitive pattern on the message. */
  readonly message?: RegExp
  /** The error's `name` (`MaxRetriesPerRequestError`, ...). */
  readonly name?: ReadonlyArray<string>
}

/**
 * One row of the classification table.
 *
 * @since 0.1.0
 * @category models
 */
export type Rule =
  | {
    readonly match: Match
    readonly kind: "transient"
    readonly reason: Errors.TransientReason
    /** What became of the command (see `Errors.Outcome`). */
    readonly outcome: Errors.Outcome
  }
  | { readonly match: Match; readonly kind: "permanent"; readonly reason: Errors.PermanentReason }

const transient = (reason: Errors.TransientReason, match: Match, outcome: Errors.Outcome = "unknown"): Rule => ({
  match,
  kind: "transient",
  reason,
  outcome
})
const permanent = (reason: Errors.PermanentReason, match: Match): Rule => ({ match, kind: "permanent", reason })

/**
 * The classification table, first match wins.
 *
 * @since 0.1.0
 * @category rules
 */
export const rules: ReadonlyArray<Rule> = [
  // Sockets
  transient("connection_reset_peer", { code: ["ECONNRESET"] }),
  transient("connection_reset_peer", { message: /connection reset by peer/i }),
  transient("connection_refused", { code: ["ECONNREFUSED"] }, "not_sent"),
  transient("broken_pipe", { code: ["EPIPE"] }),
  transient("timeout", { code: ["ETIMEDOUT"] }),
  transient("host_unreachable", { code: ["EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "EHOSTDOWN"] }, "not_sent"),
  transient("dns", { code: ["ENOTFOUND", "EAI_AGAIN"] }, "not_sent"),
  // TLS: a certificate that does not verify will not verify next time either
  permanent("tls_certificate", {
    code: [
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
  }),
  // ioredis' own failures. "Connection is closed." is both "issued after the client ended" and "in flight when it
  // closed": unknown. Only "Stream isn't writeable" (no offline queue, no ready socket) is known never to have left.
  transient("connection_closed", { message: /^Connection is closed/i }),
  transient("connection_closed", { message: /^Command aborted due to connection close/i }),
  transient("connection_unavailable", { message: /Stream isn't writeable/i }, "not_sent"),
  transient("connection_closed", { name: ["MaxRetriesPerRequestError"] }),
  transient("timeout", { message: /^Command timed out/i }),
  transient("socket_timeout", { message: /^Socket timeout/i }),
  // Sentinel (ioredis' SentinelConnector). A pass over every sentinel failed: no command was sent. The last
  // sentinel refusing our password will refuse it next time too; anything else (refused, timed out, or every
  // sentinel answering that it knows no such master) is retried.
  permanent("auth", { message: /^All sentinels are unreachable.*Last error: (NOAUTH|WRONGPASS)/i }),
  transient("host_unreachable", { message: /^All sentinels are unreachable/i }, "not_sent"),
  // Cluster (ioredis' Cluster). Its own redirection loop gave up: an earlier attempt may have been in flight on a
  // socket that closed under it, so the outcome is unknown. A slot refresh that failed, or a cluster with no ready
  // connection (no offline queue), never sent the command.
  transient("cluster_down", { message: /^Too many Cluster redirections/i }),
  transient("cluster_down", { message: /^Failed to refresh slots cache/i }, "not_sent"),
  transient("connection_unavailable", { message: /^Cluster isn't ready/i }, "not_sent"),
  transient("host_unreachable", { message: /^None of startup nodes is available/i }, "not_sent"),
  transient("connection_closed", { message: /^Cluster is ended/i }, "not_sent"),
  // Redis replies that may go away
  transient("loading", { replyPrefix: ["LOADING"] }, "rejected"),
  transient("busy", { replyPrefix: ["BUSY"] }, "rejected"),
  transient("try_again", { replyPrefix: ["TRYAGAIN"] }, "rejected"),
  transient("cluster_down", { replyPrefix: ["CLUSTERDOWN"] }, "rejected"),
  transient("master_down", { replyPrefix: ["MASTERDOWN"] }, "rejected"),
  transient("read_only", { replyPrefix: ["READONLY"] }, "rejected"),
  transient("out_of_memory", { replyPrefix: ["OOM"] }, "rejected"),
  transient("max_clients", { message: /max(imum)? number of clients reached/i }, "rejected"),
  // Redis replies that will not
  permanent("auth", { replyPrefix: ["NOAUTH", "WRONGPASS"] }),
  permanent("auth", { message: /invalid password|called without any password configured|invalid username-password/i }),
  permanent("no_permission", { replyPrefix: ["NOPERM"] }),
  permanent("wrong_type", { replyPrefix: ["WRONGTYPE"] }),
  permanent("exec_abort", { replyPrefix: ["EXECABORT"] }),
  permanent("cross_slot", { replyPrefix: ["CROSSSLOT"] }),
  permanent("moved", { replyPrefix: ["MOVED", "ASK"] }),
  permanent("unknown_command", { message: /^ERR unknown command/i }),
  permanent("syntax", { message: /^ERR (syntax error|wrong number of arguments)/i }),
  permanent("invalid_argument", { message: /^ERR (value is not|invalid expire time|.*out of range)/i })
]

/**
 * Rows read before {@link rules} for a connection to a Redis Cluster: there a `MOVED` or `ASK` reply is the cluster
 * moving a slot (a failover, a resharding), which ioredis' `Cluster` follows; one that reaches the caller (its
 * redirection budget ran out) goes away once the slot map is refreshed, so it is transient (`try_again`, `rejected`:
 * the node refused the command without running it). On a standalone connection the same reply means the server is
 * a cluster node and the client is not cluster-aware: a misconfiguration, permanent (`moved`, in {@link rules}).
 *
 * @since 0.3.0
 * @category rules
 */
export const clusterRules: ReadonlyArray<Rule> = [
  transient("try_again", { replyPrefix: ["MOVED", "ASK"] }, "rejected")
]

const lower = (xs: ReadonlyArray<string>) => xs.map((x) => x.toLowerCase())
const compile = (table: ReadonlyArray<Rule>) =>
  table.map((rule) => ({
    rule,
    code: rule.match.code && new Set(rule.match.code),
    prefix: rule.match.replyPrefix && new Set(rule.match.replyPrefix),
    name: rule.match.name && new Set(lower(rule.match.name))
  }))
const compiled = compile(rules)
const compiledCluster = compile([...clusterRules, ...rules])

interface Facts {
  readonly code: string | undefined
  readonly name: string
  readonly message: string
  readonly isReply: boolean
  readonly prefix: string
}

const facts = (error: unknown): Facts => {
  const e = (typeof error === "object" && error !== null ? error : {}) as {
    code?: unknown
    name?: unknown
    message?: unknown
    errno?: unknown
  }
  const message = typeof e.message === "string" ? e.message : typeof error === "string" ? error : String(error)
  const name = typeof e.name === "string" ? e.name : ""
  const isReply = name === "ReplyError"
  return {
    code: typeof e.code === "string" ? e.code : undefined,
    name,
    message,
    isReply,
    prefix: isReply ? (message.split(" ", 1)[0] ?? "") : ""
  }
}

/**
 * Replaces every secret in a message by `<redacted>`.
 *
 * @since 0.1.0
 * @category utils
 */
export const scrub = (message: string, secrets: ReadonlyArray<string>): string => {
  let out = message
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join("<redacted>")
  }
  return out
}

/**
 * What a classified error keeps as its `cause`: the original's name, code and (scrubbed) message, and the
 * command's name, never its arguments (ioredis attaches `AUTH`/`HELLO` arguments, i.e. passwords, to replies).
 *
 * @since 0.1.0
 * @category models
 */
export interface SanitizedCause {
  readonly name: string
  readonly code: string | undefined
  readonly message: string
  readonly command: string | undefined
}

const commandName = (error: unknown): string | undefined => {
  const command = (error as { command?: { name?: unknown } } | null)?.command
  return typeof command?.name === "string" ? command.name : undefined
}

/**
 * Classifies one failure (`topology: "cluster"` reads {@link clusterRules} first). Errors that are already classified
 * pass through; an error reply no row knows is a
 * permanent `command_error`; anything else no row knows is a transient `unknown` (it is retried a bounded
 * number of times and counted by the breaker, which is the safe side for a cache).
 *
 * @since 0.1.0
 * @category classification
 */
export const classify = (
  operation: string,
  error: unknown,
  secrets: ReadonlyArray<string> = [],
  topology: "standalone" | "sentinel" | "cluster" = "standalone"
): Errors.TransientError | Errors.PermanentError => {
  if (Errors.isTransientError(error) || Errors.isPermanentError(error)) return error
  const f = facts(error)
  const message = scrub(f.message, secrets)
  const cause: SanitizedCause = { name: f.name, code: f.code, message, command: commandName(error) }
  const lowerName = f.name.toLowerCase()
  for (const { code, name, prefix, rule } of topology === "cluster" ? compiledCluster : compiled) {
    const m = rule.match
    if (code && (f.code === undefined || !code.has(f.code))) continue
    if (prefix && (!f.isReply || !prefix.has(f.prefix))) continue
    if (name && !name.has(lowerName)) continue
    if (m.message && !m.message.test(f.message)) continue
    return rule.kind === "transient"
      ? new Errors.TransientError({ operation, reason: rule.reason, message, cause, outcome: rule.outcome })
      : new Errors.PermanentError({ operation, reason: rule.reason, message, cause })
  }
  return f.isReply
    ? new Errors.PermanentError({ operation, reason: "command_error", message, cause })
    : new Errors.TransientError({ operation, reason: "unknown", message, cause, outcome: "unknown" })
}
