/**
 * A bounded LRU map with per-entry expiry. Synchronous; time is passed in (from Effect's `Clock`), so `TestClock`
 * drives expiry in tests. `Map` keeps insertion order: re-inserting on read moves an entry to the young end, and
 * the first key is the least recently used.
 *
 * @internal
 */
interface Entry {
  readonly value: string
  /** Epoch millis, or `Infinity`. */
  readonly expiresAt: number
}

export class LruStore {
  private readonly entries = new Map<string, Entry>()

  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size
  }

  get(key: string, now: number): string | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      this.entries.delete(key)
      return undefined
    }
    this.entries.delete(key)
    this.entries.set(key, entry)
    return entry.value
  }

  set(key: string, value: string, ttlMillis: number | undefined, now: number): void {
    this.entries.delete(key)
    this.entries.set(key, { value, expiresAt: ttlMillis === undefined ? Infinity : now + ttlMillis })
    if (this.entries.size > this.maxEntries) {
      // Only ever one over the bound: drop the least recently used.
      const oldest = this.entries.keys().next()
      if (!oldest.done) this.entries.delete(oldest.value)
    }
  }

  delete(key: string, now: number): boolean {
    const entry = this.entries.get(key)
    if (entry === undefined) return false
    this.entries.delete(key)
    return entry.expiresAt > now
  }

  clear(): void {
    this.entries.clear()
  }
}
