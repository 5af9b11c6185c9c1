/**
 * A hand-built invalid policy with `maxRetries: 0` fails where it is used, by every entry point (found by the triage
 * of the mutation survivors `Retry.ts` 147 and 164, 2026-12-05: `Retry.retry` and `Retry.retryAfterFailure` let it
 * through while `RetryBudget.retry` rejected it).
 */
import { describe, expect, it } from "@effect/vitest"
import { Retry, RetryBudget, TransientError } from "@steadfast/resilience"
import * as Effect from "effect/Effect"

const transient = new TransientError({ operation: "get", reason: "timeout", message: "timed out" })
const invalid: Retry.Policy = { ...Retry.none, factor: 0 }

describe("a hand-built invalid policy with maxRetries 0", () => {
  it.effect("Retry.retry rejects it where it is used, as RetryBudget.retry does", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make()
      expect(() => RetryBudget.retry(Effect.void, budget, invalid)).toThrow(/Retry factor must be/)
      expect(() => Retry.retry(Effect.void, invalid)).toThrow(/Retry factor must be/)
    }))

  it("Retry.retryAfterFailure rejects it too", () => {
    expect(() => Retry.retryAfterFailure(Effect.void, invalid, transient)).toThrow(/Retry factor must be/)
  })
})
