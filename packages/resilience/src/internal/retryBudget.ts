import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as RB from "../RetryBudget.js"
import { decodeDuration, illegal } from "./validate.js"

/** The window is kept as this many slots of `window / SLOTS` each. */
export const SLOTS = 10

/** Float slack for `ratio * calls` (`0.7 * 10` is `7.000000000000001`). */
const EPSILON = 1e-9

/** @internal */
export interface Config {
  readonly ratio: number
  readonly minPerSecond: number
  readonly window: Duration.Duration
}

const finiteAtLeastZero = (name: string, value: unknown): number => {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw illegal(`RetryBudget ${name} must be a finite number >= 0, got ${String(value)}`)
  }
  return value
}

/** @internal */
export const validate = (options: RB.Options | undefined): Config => {
  const ratio = finiteAtLeastZero("ratio", options?.ratio ?? 0.2)
  const minPerSecond = finiteAtLeastZero("minPerSecond", options?.minPerSecond ?? 10)
  const window = options?.window === undefined
    ? Duration.seconds(10)
    : decodeDuration("RetryBudget window", options.window)
  const millis = Duration.toMillis(window)
  if (!(millis > 0) || !Number.isFinite(millis)) {
    throw illegal(`RetryBudget window must be a finite duration > 0, got ${Duration.format(window)}`)
  }
  return { ratio, minPerSecond, window }
}

/**
 * Calls and retries counted per slot of `window / SLOTS`, in a ring indexed by the slot number
 * (`floor(now / slotMillis)`). A slot's counts are cleared lazily when its ring position is reused for a newer slot;
 * the window is the current slot and the `SLOTS - 1` before it. Time never goes backwards here: a clock that steps
 * back is read as standing still.
 */
class RetryBudgetImpl implements RB.RetryBudget {
  readonly slotMillis: number
  readonly reserve: number
  readonly calls = new Array<number>(SLOTS).fill(0)
  readonly retries = new Array<number>(SLOTS).fill(0)
  readonly slots = new Array<number>(SLOTS).fill(Number.NEGATIVE_INFINITY)
  current = Number.NEGATIVE_INFINITY
  denied = 0

  constructor(readonly config: Config, readonly clock: Clock.Clock) {
    const windowMillis = Duration.toMillis(config.window)
    this.slotMillis = windowMillis / SLOTS
    this.reserve = config.minPerSecond * (windowMillis / 1_000)
  }

  /** The ring position of the current slot, cleared if it last held an older slot. */
  private position(): number {
    const slot = Math.max(this.current, Math.floor(this.clock.unsafeCurrentTimeMillis() / this.slotMillis))
    this.current = slot
    const position = slot % SLOTS
    if (this.slots[position] !== slot) {
      this.slots[position] = slot
      this.calls[position] = 0
      this.retries[position] = 0
    }
    return position
  }

  /** Calls and retries in the window (call `position()` first, so `current` is now). */
  private totals(): { calls: number; retries: number } {
    let calls = 0
    let retries = 0
    const oldest = this.current - SLOTS
    for (let i = 0; i < SLOTS; i++) {
      if (this.slots[i]! > oldest) {
        calls += this.calls[i]!
        retries += this.retries[i]!
      }
    }
    return { calls, retries }
  }

  private allowance(calls: number): number {
    return this.config.ratio * calls + this.reserve + EPSILON
  }

  unsafeRecordCall = (): void => {
    this.calls[this.position()]!++
  }

  unsafeTryRetry = (): boolean => {
    const position = this.position()
    const { calls, retries } = this.totals()
    if (retries + 1 > this.allowance(calls)) {
      this.denied++
      return false
    }
    this.retries[position]!++
    return true
  }

  unsafeSnapshot = (): RB.Snapshot => {
    this.position()
    const { calls, retries } = this.totals()
    return {
      ratio: this.config.ratio,
      minPerSecond: this.config.minPerSecond,
      window: this.config.window,
      calls,
      retries,
      available: Math.max(0, Math.floor(this.allowance(calls) - retries)),
      denied: this.denied
    }
  }

  recordCall = Effect.sync(this.unsafeRecordCall)
  tryRetry = Effect.sync(this.unsafeTryRetry)
  snapshot = Effect.sync(this.unsafeSnapshot)
}

/** @internal */
export const make = (options?: RB.Options): Effect.Effect<RB.RetryBudget> =>
  Effect.suspend(() => {
    let config: Config
    try {
      config = validate(options)
    } catch (error) {
      return Effect.die(error)
    }
    return Effect.map(Effect.clock, (clock) => new RetryBudgetImpl(config, clock))
  })
