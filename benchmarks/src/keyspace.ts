/** Pre-filled keyspaces on the shared Redis, and their clean-up. */
import type { Redis } from "ioredis"

/** A value of exactly `size` bytes (ASCII). */
export const benchValue = (size: number, seed: number): string => {
  const base = `v${seed}:`
  return (base + "x".repeat(size)).slice(0, size)
}

/** `prefix0` .. `prefix{n-1}`. */
export const benchKeys = (prefix: string, n: number): Array<string> => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

/** SETs every key to `value`, in pipelines of 500. */
export const fill = async (admin: Redis, keys: ReadonlyArray<string>, value: string): Promise<void> => {
  for (let i = 0; i < keys.length; i += 500) {
    const pipeline = admin.pipeline()
    for (const key of keys.slice(i, i + 500)) pipeline.set(key, value)
    await pipeline.exec()
  }
}

/** `SCAN MATCH pattern` + `UNLINK`; answers how many keys went. */
export const unlinkMatching = async (admin: Redis, pattern: string): Promise<number> => {
  let cursor = "0"
  let deleted = 0
  let guard = 0
  do {
    const [next, found] = await admin.scan(cursor, "MATCH", pattern, "COUNT", 1000)
    cursor = next
    if (found.length > 0) deleted += await admin.unlink(...found)
  } while (cursor !== "0" && ++guard < 100_000)
  return deleted
}
