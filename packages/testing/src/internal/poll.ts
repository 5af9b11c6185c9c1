import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * The outcome of one look at a topology: done with a value, or not yet (and why, for the timeout message).
 *
 * @internal
 */
export type Check<A> = { readonly done: true; readonly value: A } | { readonly done: false; readonly why: string }

/** @internal */
export const done = <A>(value: A): Check<A> => ({ done: true, value })

/** @internal */
export const notYet = (why: string): Check<never> => ({ done: false, why })

/**
 * Repeats `check` every `interval` until it is done; fails with `onTimeout(lastWhy)` after `timeout`. A failing
 * `check` counts as "not yet" (nodes refuse connections while they restart).
 *
 * @internal
 */
export const until = <A, E>(
  check: Effect.Effect<Check<A>, unknown>,
  timeout: Duration.Duration,
  onTimeout: (why: string) => E,
  interval: Duration.DurationInput = Duration.millis(50)
): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    let why = "not checked yet"
    const loop: Effect.Effect<A> = Effect.flatMap(
      Effect.catchAll(check, (error) => Effect.succeed(notYet(describe(error)))),
      (result) => {
        if (result.done) return Effect.succeed(result.value)
        why = result.why
        return Effect.zipRight(Effect.sleep(interval), loop)
      }
    )
    return Effect.timeoutFail(loop, { duration: timeout, onTimeout: () => onTimeout(why) })
  })

/** @internal */
export const describe = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)

/** Parses `key:value` lines (INFO, CLUSTER INFO) into a map. @internal */
export const parseInfo = (text: unknown): Map<string, string> => {
  const map = new Map<string, string>()
  if (typeof text !== "string") return map
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":")
    if (colon > 0 && !line.startsWith("#")) map.set(line.slice(0, colon), line.slice(colon + 1))
  }
  return map
}

/** Sends a signal, ignoring a process that is already gone. @internal */
export const signal = (pid: number | undefined, sig: NodeJS.Signals): void => {
  if (pid === undefined) return
  try {
    process.kill(pid, sig)
  } catch {
    // already exited
  }
}
