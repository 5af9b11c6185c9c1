import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"

/** @internal */
export const illegal = (message: string): Cause.IllegalArgumentException =>
  new Cause.IllegalArgumentException(`@steadfast/resilience: ${message}`)

/**
 * Decodes a `DurationInput`, turning a malformed input (which makes `Duration.decode` throw) or a negative /
 * NaN number into an `IllegalArgumentException` that names the option.
 *
 * @internal
 */
export const decodeDuration = (name: string, input: Duration.DurationInput): Duration.Duration => {
  // `Duration.decode` silently clamps negative and NaN numbers to zero: reject them instead.
  if (typeof input === "number" && !(input >= 0)) {
    throw illegal(`${name} must not be negative or NaN, got ${input}`)
  }
  try {
    return Duration.decode(input)
  } catch {
    throw illegal(`${name} is not a valid duration: ${String(input)}`)
  }
}
