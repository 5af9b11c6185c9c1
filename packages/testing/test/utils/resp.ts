/**
 * A tiny RESP2 encoder and incremental decoder for the raw test client (`RespClient.ts`), which needs every reply
 * and every socket event as they come. `RedisServer.command` goes through ioredis; this is test-only.
 */

/** A `-ERR ...` reply: a value, not a failure. */
export interface ErrorReply {
  readonly _tag: "Error"
  readonly message: string
}

/** A decoded RESP2 reply: simple and bulk strings are strings, integers numbers, nil bulk / nil array `null`. */
export type Reply = string | number | null | ErrorReply | ReadonlyArray<Reply>

/** Encodes a command as a RESP2 array of bulk strings. */
export const encode = (args: ReadonlyArray<string>): Buffer => {
  const parts: Array<Buffer> = [Buffer.from(`*${args.length}\r\n`)]
  for (const arg of args) {
    const bytes = Buffer.from(arg)
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n"))
  }
  return Buffer.concat(parts)
}

/** Thrown by the decoder on bytes that are not RESP2. */
export class ProtocolError extends Error {}

type Parsed = { readonly reply: Reply; readonly next: number } | undefined

const parseAt = (buf: Buffer, offset: number): Parsed => {
  const eol = buf.indexOf("\r\n", offset)
  if (eol === -1) return undefined
  const type = String.fromCharCode(buf[offset]!)
  const line = buf.toString("utf8", offset + 1, eol)
  const next = eol + 2
  switch (type) {
    case "+":
      return { reply: line, next }
    case "-":
      return { reply: { _tag: "Error", message: line }, next }
    case ":":
      return { reply: Number(line), next }
    case "$": {
      const length = Number(line)
      if (length < 0) return { reply: null, next }
      if (buf.length < next + length + 2) return undefined
      return { reply: buf.toString("utf8", next, next + length), next: next + length + 2 }
    }
    case "*": {
      const count = Number(line)
      if (count < 0) return { reply: null, next }
      const items: Array<Reply> = []
      let cursor = next
      for (let i = 0; i < count; i++) {
        const item = parseAt(buf, cursor)
        if (item === undefined) return undefined
        items.push(item.reply)
        cursor = item.next
      }
      return { reply: items, next: cursor }
    }
    default:
      throw new ProtocolError(`Unexpected RESP type byte ${JSON.stringify(type)}`)
  }
}

/**
 * Incremental decoder: feed it socket chunks, get back every reply completed so far.
 * Throws {@link ProtocolError} on malformed input.
 */
export class Decoder {
  private buffer: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): Array<Reply> {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    const replies: Array<Reply> = []
    let offset = 0
    while (offset < this.buffer.length) {
      const parsed = parseAt(this.buffer, offset)
      if (parsed === undefined) break
      replies.push(parsed.reply)
      offset = parsed.next
    }
    this.buffer = this.buffer.subarray(offset)
    return replies
  }
}

/** `true` for a `-ERR ...` reply. */
export const isErrorReply = (reply: Reply): reply is ErrorReply =>
  typeof reply === "object" && reply !== null && !Array.isArray(reply) && (reply as ErrorReply)._tag === "Error"
