import * as Effect from "effect/Effect"

/** Polls `check` every 50 ms until it returns true, for at most `timeoutMs` (a real socket needs real time). */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (yield* check) return true
      yield* Effect.sleep("50 millis")
    }
    return yield* check
  })
