/**
 * The reply model of `RedisServer.command`, made from what ioredis returns.
 *
 * @internal
 */

/** A `-ERR ...` reply: a value, not a failure. */
export interface ErrorReply {
  readonly _tag: "Error"
  readonly message: string
}

/** A RESP2 reply: simple and bulk strings are strings, integers numbers, nil bulk / nil array `null`. */
export type Reply = string | number | null | ErrorReply | ReadonlyArray<Reply>

/** `true` for a `-ERR ...` reply. */
export const isErrorReply = (reply: Reply): reply is ErrorReply =>
  typeof reply === "object" && reply !== null && !Array.isArray(reply) && (reply as ErrorReply)._tag === "Error"

/** An error reply as ioredis reports it (a rejection, or an element of an array reply). */
export const isReplyError = (value: unknown): value is Error => value instanceof Error && value.name === "ReplyError"

const SUBSCRIBE = new Set(["subscribe", "psubscribe", "ssubscribe"])
const UNSUBSCRIBE = new Set(["unsubscribe", "punsubscribe", "sunsubscribe"])

/**
 * The command name to give ioredis: upper case, as ioredis transforms the arguments and replies of a few commands
 * it knows by their lower case name (`hgetall` replies with an object, `mset` takes one), and Redis ignores the
 * case. The (un)subscribe commands stay lower case: ioredis must track the subscriptions (an upper case
 * `SUBSCRIBE` makes it throw an uncaught TypeError when the confirmation arrives).
 */
export const wireName = (name: string): string => {
  const lower = name.toLowerCase()
  return SUBSCRIBE.has(lower) || UNSUBSCRIBE.has(lower) ? lower : name.toUpperCase()
}

/**
 * A reply as ioredis decodes it with `protocol: 2` and utf8 strings, as a {@link Reply}. Error replies, also
 * nested ones (e.g. in the result of a script), become `{ _tag: "Error", message }`. `command` (the command's
 * arguments) serves the (un)subscribe commands, see above.
 */
export const fromClient = (value: unknown, command?: ReadonlyArray<string>): Reply => {
  const name = command?.[0]?.toLowerCase()
  // ioredis resolves an (un)subscription with the count once every channel is confirmed; Redis' first reply on
  // a fresh connection is the confirmation of the first channel: [kind, channel, 1] (or 0 when unsubscribing).
  if (name !== undefined && typeof value === "number" && (SUBSCRIBE.has(name) || UNSUBSCRIBE.has(name))) {
    return [name, command![1] ?? null, SUBSCRIBE.has(name) ? 1 : 0]
  }
  if (value === null || value === undefined) return null
  if (typeof value === "string" || typeof value === "number") return value
  if (Array.isArray(value)) return value.map((item) => fromClient(item))
  if (isReplyError(value)) return { _tag: "Error", message: value.message }
  if (value instanceof Uint8Array) return Buffer.from(value).toString("utf8")
  return String(value)
}
