/**
 * `internal/slot.ts` against Redis itself: a cluster-enabled `redis-server` (spawned here, never the shared one)
 * answers `CLUSTER KEYSLOT` for every key, and the connection must route each key to the slot Redis computes. A wrong
 * slot is a key sent to the wrong shard (a `MOVED` on every call, or a multi-key batch split wrongly). The keys cover
 * the hash-tag rules (first `{`, next `}`, empty tags, unterminated tags, several tags), non-ASCII text, raw bytes,
 * and enough random keys that every entry of the CRC table is used.
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisServer } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import { crc16, slot } from "../src/internal/slot.js"

/** Deterministic pseudo-random bytes (xorshift), so a failure names the same keys on every run. */
const randomBytes = (count: number, seed: number): Array<Buffer> => {
  let x = seed
  const next = () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x >>> 0
  }
  return Array.from({ length: count }, () => Buffer.from(Array.from({ length: 1 + (next() % 24) }, () => next() & 0xff)))
}

const textKeys: ReadonlyArray<string> = [
  "",
  "a",
  "123456789",
  "user:1000",
  "{user1000}.following",
  "{user1000}.followers",
  "foo{}{bar}", // empty first tag: the whole key
  "foo{{bar}}", // the tag is "{bar"
  "foo{bar}{zap}", // the first tag only
  "{}", // empty tag
  "{",
  "}",
  "}{",
  "a{b", // unterminated
  "a}b{c", // `}` before `{`
  "{a}", // the tag is the key's start
  "x{a}",
  "{ab}x",
  "{a}{b}",
  "é",
  "clé:{é}",
  "日本語",
  "{日本}語",
  "emoji:😀",
  "\u007f",
  "\u0080",
  "tab\tnew\nline",
  "a".repeat(300),
  ...Array.from({ length: 128 }, (_, code) => String.fromCharCode(code)), // every ASCII character alone
  ...Array.from({ length: 128 }, (_, code) => `k${String.fromCharCode(code)}z`)
]

describe("slot: the hash slot Redis computes", () => {
  it.scopedLive("every key maps to CLUSTER KEYSLOT's answer, as text and as bytes", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ config: ["cluster-enabled yes", "cluster-config-file nodes.conf"] })
      const client = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis({ host: server.host, port: server.port, lazyConnect: false, maxRetriesPerRequest: 1 })),
        (c) => Effect.sync(() => c.disconnect())
      )
      const keySlot = (keys: ReadonlyArray<string | Buffer>) =>
        Effect.promise(async () => {
          const pipeline = client.pipeline()
          for (const key of keys) pipeline.call("CLUSTER", "KEYSLOT", key)
          const results = (await pipeline.exec()) ?? []
          return results.map(([error, value]) => {
            if (error !== null) throw error
            return Number(value)
          })
        })

      const expectedText = yield* keySlot(textKeys)
      textKeys.forEach((key, i) => {
        expect(slot(key), JSON.stringify(key)).toBe(expectedText[i])
        expect(slot(Buffer.from(key, "utf8")), `bytes of ${JSON.stringify(key)}`).toBe(expectedText[i])
      })

      const bytes = [
        ...randomBytes(600, 0x2545f491),
        ...Array.from({ length: 256 }, (_, b) => Buffer.from([b])), // every byte alone
        Buffer.from([0x7b, 0xff, 0x7d, 0x00]), // a binary hash tag
        Buffer.from([0xff, 0x7b, 0x7d, 0x7b, 0x80, 0x7d]) // empty tag first: the whole key
      ]
      const expectedBytes = yield* keySlot(bytes)
      bytes.forEach((key, i) => {
        expect(slot(key), key.toString("hex")).toBe(expectedBytes[i])
        expect(slot(new Uint8Array(key)), `Uint8Array ${key.toString("hex")}`).toBe(expectedBytes[i])
      })
      // The strings among them (lone surrogates aside) hash the same as their bytes.
      for (const key of bytes) {
        const text = key.toString("latin1")
        expect(slot(text), `latin1 ${key.toString("hex")}`).toBe(slot(Buffer.from(text, "utf8")))
      }
    }), { timeout: 30_000 })

  it("crc16 is CRC16/XMODEM: the check value, and the bytes of Redis' own test vector", () => {
    expect(crc16(Buffer.from("123456789"))).toBe(0x31c3)
    expect(crc16(new Uint8Array())).toBe(0)
    // Above 16383: the full 16-bit value, not the slot.
    expect(crc16(Buffer.from("a"))).toBe(0x7c87)
    expect(crc16(Buffer.from([0xff]))).toBe(0x1ef0)
  })
})
