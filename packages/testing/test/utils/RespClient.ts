/**
 * A raw RESP client for tests: one socket, no reconnection, every socket event observable.
 */
import * as Net from "node:net"
import * as Tls from "node:tls"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Resp from "./resp.js"

export interface Outcome {
  /** `end` (FIN) was received. */
  readonly ended: boolean
  /** The socket error code, e.g. `ECONNRESET`. */
  readonly error: string | undefined
}

export interface RespClient {
  readonly socket: Net.Socket
  readonly write: (...args: ReadonlyArray<string>) => Effect.Effect<void>
  /** The next reply, or `None` after `timeout`. */
  readonly next: (timeout?: Duration.DurationInput) => Effect.Effect<Option.Option<Resp.Reply>>
  /** Writes a command and waits for the next reply (at most 5 s). */
  readonly send: (...args: ReadonlyArray<string>) => Effect.Effect<Resp.Reply, string>
  /** Waits (at most 5 s) for the socket to close. */
  readonly closed: Effect.Effect<Outcome, string>
}

export const connect = (
  port: number,
  options: { readonly tls?: Tls.ConnectionOptions } = {}
): Effect.Effect<RespClient, NodeJS.ErrnoException, Scope.Scope> =>
  Effect.gen(function*() {
    const replies = yield* Queue.unbounded<Resp.Reply>()
    const closed = yield* Deferred.make<Outcome>()
    const socket = yield* Effect.acquireRelease(
      Effect.async<Net.Socket, NodeJS.ErrnoException>((resume) => {
        const socket = options.tls
          ? Tls.connect({ host: "127.0.0.1", port, ...options.tls })
          : Net.connect({ host: "127.0.0.1", port })
        const decoder = new Resp.Decoder()
        let ended = false
        let error: string | undefined
        let connected = false
        socket.on("data", (chunk: Buffer) => decoder.push(chunk).forEach((reply) => Queue.unsafeOffer(replies, reply)))
        socket.on("end", () => (ended = true))
        socket.on("error", (e: NodeJS.ErrnoException) => {
          error ??= e.code ?? e.message
          if (!connected) resume(Effect.fail(e))
        })
        socket.on("close", () => Deferred.unsafeDone(closed, Effect.succeed({ ended, error })))
        socket.once(options.tls ? "secureConnect" : "connect", () => {
          connected = true
          resume(Effect.succeed(socket))
        })
      }),
      (socket) => Effect.sync(() => socket.destroy())
    )
    const write = (...args: ReadonlyArray<string>) => Effect.sync(() => void socket.write(Resp.encode(args)))
    const next = (timeout: Duration.DurationInput = Duration.seconds(5)) =>
      Queue.take(replies).pipe(Effect.timeoutOption(timeout))
    return {
      socket,
      write,
      next,
      send: (...args) =>
        write(...args).pipe(
          Effect.zipRight(next()),
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(`no reply to ${args[0]}`),
            onSome: Effect.succeed
          }))
        ),
      closed: Deferred.await(closed).pipe(
        Effect.timeoutFail({ duration: Duration.seconds(5), onTimeout: () => "socket still open after 5 s" })
      )
    } satisfies RespClient
  })

/** The error code of a failed connection attempt, e.g. `ECONNREFUSED`. */
export const connectError = (port: number): Effect.Effect<string | undefined> =>
  Effect.scoped(connect(port)).pipe(
    Effect.match({ onFailure: (e) => e.code ?? e.message, onSuccess: () => undefined })
  )
