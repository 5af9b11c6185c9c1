/**
 * The keys Redis missed: written or deleted through the resilient cache while Redis did not acknowledge. One entry per
 * key (the newest intent wins), at most `max` of them; oldest first.
 *
 * @internal
 */
export interface Intent {
  /** The value to write back (write-back policy only); `undefined`: delete (or invalidate). */
  readonly value: string | undefined
  /** When the written value expires (epoch millis or `Infinity`); a value past it is deleted instead. */
  readonly expiresAt: number
}

export class Pending {
  private readonly intents = new Map<string, Intent>()

  constructor(readonly max: number) {}

  get size(): number {
    return this.intents.size
  }

  has(key: string): boolean {
    return this.intents.size !== 0 && this.intents.has(key)
  }

  /** The newest intent for `key`, if it is pending. */
  current(key: string): Intent | undefined {
    return this.intents.size === 0 ? undefined : this.intents.get(key)
  }

  /** Remembers the newest intent for `key`; `false` if it could not be kept (a new key past the bound). */
  mark(key: string, intent: Intent): boolean {
    if (this.intents.delete(key)) {
      this.intents.set(key, intent)
      return true
    }
    if (this.intents.size >= this.max) return false
    this.intents.set(key, intent)
    return true
  }

  /** The oldest `n` entries (left in place until {@link settle}d). */
  oldest(n: number): Array<readonly [string, Intent]> {
    const out: Array<readonly [string, Intent]> = []
    for (const entry of this.intents) {
      if (out.length >= n) break
      out.push(entry)
    }
    return out
  }

  /** Forgets `key` if its intent is still `intent` (a newer one, marked meanwhile, stays for the next round). */
  settle(key: string, intent: Intent): boolean {
    if (this.intents.get(key) !== intent) return false
    this.intents.delete(key)
    return true
  }

  clear(): void {
    this.intents.clear()
  }
}
