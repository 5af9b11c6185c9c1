/**
 * Redis Cluster's key-to-slot mapping: CRC16 (XMODEM: polynomial 0x1021, initial value 0) of the key's UTF-8
 * bytes, or of its hash tag (the bytes between the first `{` and the next `}`, when not empty), modulo 16384.
 *
 * A copy of `@steadfast/testing`'s (the connection must not depend on the testing package).
 *
 * @internal
 */

const table: ReadonlyArray<number> = Array.from({ length: 256 }, (_, byte) => {
  let crc = byte << 8
  for (let bit = 0; bit < 8; bit++) {
    crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
})

/** CRC16/XMODEM; `crc16("123456789") === 0x31c3`. */
export const crc16 = (bytes: Uint8Array): number => {
  let crc = 0
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ byte) & 0xff]!
  return crc
}

const OPEN = 0x7b // {
const CLOSE = 0x7d // }

/** The hash slot (0..16383) of a key. ASCII keys without a `{` are hashed from their characters (no allocation). */
export const slot = (key: string | Uint8Array): number => {
  if (typeof key === "string" && key.indexOf("{") === -1 && /^[\x00-\x7f]*$/.test(key)) {
    let crc = 0
    for (let i = 0; i < key.length; i++) crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ key.charCodeAt(i)) & 0xff]!
    return crc % 16384
  }
  const bytes = typeof key === "string" ? Buffer.from(key, "utf8") : key
  const open = bytes.indexOf(OPEN)
  if (open !== -1) {
    const close = bytes.indexOf(CLOSE, open + 1)
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % 16384
  }
  return crc16(bytes) % 16384
}
