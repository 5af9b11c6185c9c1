import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import {
  CircuitOpenError,
  Errors,
  isCircuitOpenError,
  isPermanentError,
  isTransientError,
  PermanentError,
  TransientError
} from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "timeout", message: "timed out" })
const permanent = new PermanentError({ operation: "get", reason: "auth", message: "WRONGPASS" })
const open = new CircuitOpenError({ operation: "get", retryAfter: Duration.seconds(1), message: "open" })

describe("Errors", () => {
  it("each error carries its documented tag", () => {
    expect([transient._tag, permanent._tag, open._tag]).toStrictEqual(["TransientError", "PermanentError", "CircuitOpenError"])
  })

  it("each refinement recognises its own error and only it, flat and under Errors", () => {
    const errors = [transient, permanent, open, new Error("plain"), { _tag: "Other" }, undefined]
    const matches = (refinement: (u: unknown) => boolean) => errors.map(refinement)
    expect(matches(isTransientError)).toStrictEqual([true, false, false, false, false, false])
    expect(matches(isPermanentError)).toStrictEqual([false, true, false, false, false, false])
    expect(matches(isCircuitOpenError)).toStrictEqual([false, false, true, false, false, false])
    expect(Errors.isTransientError).toBe(isTransientError)
    expect(Errors.isPermanentError).toBe(isPermanentError)
    expect(Errors.isCircuitOpenError).toBe(isCircuitOpenError)
  })

  it.effect("Effect.catchTag works with each tag", () =>
    Effect.gen(function*() {
      const caught = (error: TransientError | PermanentError | CircuitOpenError) =>
        Effect.fail(error).pipe(
          Effect.catchTag("TransientError", () => Effect.succeed("transient")),
          Effect.catchTag("PermanentError", () => Effect.succeed("permanent")),
          Effect.catchTag("CircuitOpenError", () => Effect.succeed("open"))
        )
      expect(yield* caught(transient)).toBe("transient")
      expect(yield* caught(permanent)).toBe("permanent")
      expect(yield* caught(open)).toBe("open")
    }))

  it("mayHaveRun: a transient failure may have run unless it was never sent or the server refused it", () => {
    const withOutcome = (outcome?: Errors.Outcome) =>
      new TransientError({ operation: "incr", reason: "connection_closed", message: "closed", outcome })
    expect(Errors.mayHaveRun(withOutcome("unknown"))).toBe(true)
    expect(Errors.mayHaveRun(withOutcome())).toBe(true) // absent means unknown: the safe assumption
    expect(Errors.mayHaveRun(withOutcome("not_sent"))).toBe(false)
    expect(Errors.mayHaveRun(withOutcome("rejected"))).toBe(false)
    expect(Errors.mayHaveRun(permanent)).toBe(false)
  })
})
