/**
 * Invalid configuration is reported with a message that names the package, the option and the value given: the
 * message is all an operator sees in a crash at startup.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { CircuitBreaker, Deadline, Retry } from "@steadfast/resilience"

const thrownBy = (f: () => unknown): unknown => {
  try {
    f()
  } catch (error) {
    return error
  }
  return undefined
}

const messageOf = (error: unknown): string => {
  expect(Cause.isIllegalArgumentException(error)).toBe(true)
  return (error as Cause.IllegalArgumentException).message
}

const breakerDefect = (options: CircuitBreaker.Options) =>
  Effect.map(Effect.exit(CircuitBreaker.make(options)), (exit) =>
    Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined)

describe("invalid configuration messages", () => {
  it.effect("CircuitBreaker.make", () =>
    Effect.gen(function*() {
      expect(messageOf(yield* breakerDefect({ failureThreshold: 0 }))).toBe(
        "@steadfast/resilience: CircuitBreaker failureThreshold must be an integer >= 1, got 0"
      )
      expect(messageOf(yield* breakerDefect({ halfOpenAfter: 0 }))).toBe(
        "@steadfast/resilience: CircuitBreaker halfOpenAfter must be a finite duration > 0, got 0"
      )
      expect(messageOf(yield* breakerDefect({ halfOpenAfter: Duration.infinity }))).toBe(
        "@steadfast/resilience: CircuitBreaker halfOpenAfter must be a finite duration > 0, got Infinity"
      )
      expect(messageOf(yield* breakerDefect({ halfOpenAfter: -5 }))).toBe(
        "@steadfast/resilience: CircuitBreaker halfOpenAfter must not be negative or NaN, got -5"
      )
      expect(messageOf(yield* breakerDefect({ halfOpenAfter: "soon" as Duration.DurationInput }))).toBe(
        "@steadfast/resilience: CircuitBreaker halfOpenAfter is not a valid duration: soon"
      )
    }))

  it("Retry.make and Retry.schedule", () => {
    expect(messageOf(thrownBy(() => Retry.make({ maxRetries: -1 })))).toBe(
      "@steadfast/resilience: Retry maxRetries must be an integer >= 0, got -1"
    )
    expect(messageOf(thrownBy(() => Retry.make({ baseDelay: Duration.infinity })))).toBe(
      "@steadfast/resilience: Retry baseDelay must be finite, got Infinity"
    )
    expect(messageOf(thrownBy(() => Retry.make({ baseDelay: Number.NaN })))).toBe(
      "@steadfast/resilience: Retry baseDelay must not be negative or NaN, got NaN"
    )
    expect(messageOf(thrownBy(() => Retry.make({ maxDelay: "later" as Duration.DurationInput })))).toBe(
      "@steadfast/resilience: Retry maxDelay is not a valid duration: later"
    )
    expect(messageOf(thrownBy(() => Retry.make({ factor: 0.5 })))).toBe(
      "@steadfast/resilience: Retry factor must be a finite number >= 1, got 0.5"
    )
    expect(messageOf(thrownBy(() => Retry.schedule({ ...Retry.make(), maxRetries: 1.5 })))).toBe(
      "@steadfast/resilience: Retry maxRetries must be an integer >= 0, got 1.5"
    )
  })

  it("Deadline.within", () => {
    expect(messageOf(thrownBy(() => Deadline.within("get", 0)))).toBe(
      "@steadfast/resilience: Deadline duration must be > 0, got 0"
    )
    expect(messageOf(thrownBy(() => Deadline.within("get", -1)))).toBe(
      "@steadfast/resilience: Deadline duration must not be negative or NaN, got -1"
    )
    expect(messageOf(thrownBy(() => Deadline.within("get", "whenever" as Duration.DurationInput)))).toBe(
      "@steadfast/resilience: Deadline duration is not a valid duration: whenever"
    )
  })

  it("boundaries: zero retries, a zero base delay and a factor of 1 are valid", () => {
    expect(Retry.make({ maxRetries: 0, baseDelay: 0, factor: 1 })).toMatchObject({ maxRetries: 0, factor: 1 })
    expect(Retry.none).toMatchObject({ maxRetries: 0, jitter: false })
  })
})
