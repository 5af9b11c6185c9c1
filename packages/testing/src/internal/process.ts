/**
 * Child processes through `@effect/platform`'s `Command`, with the bounded waits and the last-resort cleanup the
 * test servers need.
 *
 * @internal
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import type * as PlatformError from "@effect/platform/Error"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** Keeps the end of a text. @internal */
export const tail = (text: string, max = 2000): string => (text.length > max ? "..." + text.slice(-max) : text)

// Last line of defence: if the test process ends without closing a scope, take the children with it. `Command`
// spawns each child in a process group of its own (`detached`), so a terminal's Ctrl-C no longer reaches it. When
// nothing else listens for SIGINT, SIGTERM or SIGHUP (the process is about to die of it), the children are killed
// and the signal is raised again, so the process still ends the way it would have. When something else listens
// (e.g. `NodeRuntime.runMain`, which interrupts the program so that its scopes close), it decides; the children
// are still killed on `exit`.
const running = new Set<number>()
let hooksInstalled = false

const killNow = (pid: number): void => {
  try {
    process.kill(-pid, "SIGKILL")
  } catch {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
}

const killAll = (): void => running.forEach(killNow)

const installHooks = (): void => {
  if (hooksInstalled) return
  hooksInstalled = true
  process.once("exit", killAll)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return
      killAll()
      process.removeListener(signal, onSignal)
      process.kill(process.pid, signal)
    }
    process.on(signal, onSignal)
  }
}

/**
 * A spawned process that lives in a scope of its own, so that it can be stopped and spawned again while the
 * resource that owns it lives on.
 *
 * @internal
 */
export interface Child {
  readonly pid: number
  readonly process: CommandExecutor.Process
  /** How the process ended (`exited (code 1)`, `killed by SIGKILL`), `undefined` while it runs. */
  readonly exit: () => string | undefined
  /** The end of what the process wrote to stderr so far. */
  readonly stderr: () => string
  /** Waits until stderr has been read to its end (the process exited), at most `timeout`. */
  readonly stderrRead: (timeout: Duration.DurationInput) => Effect.Effect<void>
  /** Waits until the process has exited; `false` when it has not after `timeout`. */
  readonly awaitExit: (timeout: Duration.DurationInput) => Effect.Effect<boolean>
  /**
   * Sends `signal` (to the process group) and waits until the process has exited; `false` when it has not after
   * `timeout`. Nothing is sent once it has exited.
   */
  readonly signal: (signal: NodeJS.Signals, timeout: Duration.DurationInput) => Effect.Effect<boolean>
  /**
   * Releases the platform's handle of an exited process (reads of its output stop). A process still running is
   * released in the background, once it exits: the platform would otherwise wait for it.
   */
  readonly release: Effect.Effect<void>
}

const describeExit = (exit: Exit.Exit<CommandExecutor.ExitCode, PlatformError.PlatformError>): string => {
  if (Exit.isSuccess(exit)) return `exited (code ${exit.value})`
  // Only the message: rendering the cause (`Cause.pretty`) formats stack traces.
  const message = Option.match(Cause.failureOption(exit.cause), { onNone: () => "no exit code", onSome: (e) => e.message })
  const signal = /signal: (\w+)/.exec(message)?.[1]
  return signal === undefined ? `ended: ${message}` : `killed by ${signal}`
}

/**
 * Spawns `command` (stdout drained, stderr kept). Uninterruptible until the process exists and its cleanup is in
 * place, so an interruption never leaves a process nobody waits for.
 *
 * @internal
 */
export const spawn = (
  command: Command.Command
): Effect.Effect<Child, PlatformError.PlatformError, CommandExecutor.CommandExecutor> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const scope = yield* Scope.make()
    const proc = yield* Scope.extend(Command.start(command), scope).pipe(
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
    )
    const pid = proc.pid
    installHooks()
    running.add(pid)
    let exit: string | undefined
    let stderr = ""
    const exited = yield* Deferred.make<void>()
    const decoder = new TextDecoder()
    const stderrFiber = yield* Effect.forkIn(
      Effect.interruptible(Stream.runForEach(proc.stderr, (chunk) =>
        Effect.sync(() => {
          stderr = tail(stderr + decoder.decode(chunk, { stream: true }))
        }))),
      scope
    )
    yield* Effect.forkIn(Effect.interruptible(Stream.runDrain(proc.stdout)), scope)
    yield* Effect.forkIn(
      Effect.interruptible(Effect.flatMap(Effect.exit(proc.exitCode), (result) =>
        Effect.sync(() => {
          exit = describeExit(result)
          running.delete(pid)
        }).pipe(Effect.zipRight(Deferred.succeed(exited, undefined))))),
      scope
    )

    const awaitExit = (timeout: Duration.DurationInput) =>
      Deferred.await(exited).pipe(Effect.timeoutOption(timeout), Effect.map(Option.isSome))

    const signal = (sig: NodeJS.Signals, timeout: Duration.DurationInput) =>
      Effect.suspend(() => {
        if (exit !== undefined) return Effect.succeed(true)
        // The platform's `kill` signals the process group, then waits for the exit without a bound.
        return proc.kill(sig).pipe(
          Effect.timeoutOption(timeout),
          // exited: let the watcher record how, so that `release` finds it done
          Effect.flatMap((done) => (Option.isSome(done) ? awaitExit(timeout) : Effect.succeed(false))),
          // ESRCH: it exited in the meantime, the exit event is on its way
          Effect.catchAll(() => awaitExit(timeout))
        )
      })

    const release = Effect.suspend(() =>
      exit !== undefined
        ? Scope.close(scope, Exit.void)
        : Effect.asVoid(Effect.forkDaemon(Effect.zipRight(Deferred.await(exited), Scope.close(scope, Exit.void))))
    )

    return {
      pid,
      process: proc,
      exit: () => exit,
      stderr: () => stderr,
      stderrRead: (timeout) => Effect.ignore(Effect.timeout(Fiber.await(stderrFiber), timeout)),
      awaitExit,
      signal,
      release
    } satisfies Child
  }))

/**
 * What {@link run} collected.
 *
 * @internal
 */
export interface Output {
  /** `undefined` when the process was killed by a signal. */
  readonly code: number | undefined
  readonly stdout: string
  readonly stderr: string
}

const collect = (stream: Stream.Stream<Uint8Array, PlatformError.PlatformError>) =>
  Stream.decodeText(stream).pipe(Stream.runFold("", (text, chunk) => text + chunk))

/**
 * Runs `command` to its end and collects its output. After `timeout`, or when interrupted, the process is killed
 * with SIGKILL (and reaped) before this returns.
 *
 * @internal
 */
export const run = (
  command: Command.Command,
  timeout: Duration.DurationInput
): Effect.Effect<Output, PlatformError.PlatformError | "timeout", CommandExecutor.CommandExecutor> =>
  Effect.scoped(Effect.gen(function*() {
    const proc = yield* Effect.uninterruptible(Effect.gen(function*() {
      const started = yield* Command.start(command)
      installHooks()
      running.add(started.pid)
      // Runs before the platform's own release (which sends SIGTERM and waits without a bound).
      yield* Effect.addFinalizer(() =>
        Effect.ignore(Effect.flatMap(started.isRunning, (alive) => (alive ? started.kill("SIGKILL") : Effect.void))).pipe(
          Effect.ensuring(Effect.sync(() => running.delete(started.pid)))
        )
      )
      return started
    }))
    const result = yield* Effect.all(
      [collect(proc.stdout), collect(proc.stderr), Effect.either(proc.exitCode)],
      { concurrency: "unbounded" }
    ).pipe(Effect.timeoutOption(timeout))
    if (Option.isNone(result)) return yield* Effect.fail("timeout" as const)
    const [stdout, stderr, code] = result.value
    return { code: code._tag === "Right" ? code.right : undefined, stdout, stderr } satisfies Output
  }))
