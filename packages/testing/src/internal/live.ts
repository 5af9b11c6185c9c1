import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

const clock = Clock.make()

/**
 * Runs an effect on the real clock. Servers and sockets live in real time, so their waits and timeouts must
 * not depend on the `TestClock` that `it.effect` / `it.scoped` install.
 *
 * @internal
 */
export const live = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => Effect.withClock(self, clock)
