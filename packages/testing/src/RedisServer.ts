/**
 * A real `redis-server` process as a scoped resource, for tests.
 *
 * `make` spawns `redis-server` (from `PATH`) on a free port of 127.0.0.1 with persistence off, a temporary
 * directory and a log file, and waits until it accepts connections. Closing the scope kills the process, waits
 * for it to exit and removes the directory, also on failure and interruption.
 *
 * The process is spawned with `@effect/platform`'s `Command` and the files are written with its `FileSystem`;
 * Node's implementations are provided inside, so `make` needs nothing but a `Scope`. Admin commands
 * (`command`) go through ioredis.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/platform/Command"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { live } from "./internal/live.js"
import * as Platform from "./internal/platform.js"
import { freePorts } from "./internal/ports.js"
import * as Proc from "./internal/process.js"
import * as Reply from "./internal/reply.js"

/**
 * Any failure to start, stop or talk to the server. The message of a start failure ends with the tail of the
 * server's log.
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisServerError extends Data.TaggedError("RedisServerError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A reply decoded from RESP2: simple and bulk strings are `string`, integers `number`, nil `null`, arrays
 * arrays, and an error reply (`-ERR ...`) is the value `{ _tag: "Error", message }`.
 *
 * @since 0.1.0
 * @category models
 */
export type RedisReply = Reply.Reply

/**
 * An ACL user created at start-up.
 *
 * @since 0.1.0
 * @category models
 */
export interface User {
  readonly username: string
  readonly password: string
  /** ACL rules; replace the default `"on ~* &* +@all"` entirely (include `on`). */
  readonly rules?: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `requirepass`: the password of the `default` user. */
  readonly password?: string
  /** ACL users. */
  readonly users?: ReadonlyArray<User>
  /** Listen with TLS only, using a fresh CA and a server certificate for 127.0.0.1 / localhost. */
  readonly tls?: boolean
  /**
   * Extra `redis.conf` lines, e.g. `"timeout 1"`, `"maxmemory 2mb"`, `"maxclients 5"`. They come last, so they
   * override the defaults (`DEBUG` is enabled by default: `enable-debug-command yes`).
   */
  readonly config?: ReadonlyArray<string>
  /** A fixed port. Default: a free port. */
  readonly port?: number
  /** How long to wait for the server to accept connections. Default: 10 seconds. */
  readonly startTimeout?: Duration.DurationInput
  /** Bound of each {@link RedisServer.command}. Default: 5 seconds. */
  readonly commandTimeout?: Duration.DurationInput
  /**
   * Run as Redis Sentinel (`redis-server <conf> --sentinel`); pass its `sentinel monitor ...` lines in
   * `config`. Sentinel rewrites its config file, which lives in the temporary directory. Default: `false`.
   *
   * @since 0.2.0
   */
  readonly sentinel?: boolean
}

/**
 * The files of a TLS server. `ca` is the PEM of the CA that signed the server certificate: pass it as `ca` to
 * `tls.connect` or to your client.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsFiles {
  readonly ca: string
  readonly caFile: string
  readonly certFile: string
  readonly keyFile: string
}

/**
 * A running (or stopped) `redis-server`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisServer {
  /** Always `"127.0.0.1"`. */
  readonly host: string
  readonly port: number
  /**
   * `redis://` (or `rediss://` with TLS) URL. It carries `:password@` when `password` is set, otherwise
   * `username:password@` of the first ACL user, if any.
   */
  readonly url: string
  /** The same URL without credentials. */
  readonly urlWithoutAuth: string
  /** The password used by `url` and `command`, if any. */
  readonly password?: string
  /** The ACL user used by `url` and `command`, if any (only when `password` is not set). */
  readonly username?: string
  /** Present when started with `tls: true`. */
  readonly tls?: TlsFiles
  /** The pid of the current process, `undefined` while stopped. */
  readonly pid: Effect.Effect<number | undefined>
  /** Graceful stop (SIGTERM, bounded wait, then SIGKILL). No-op when stopped. */
  readonly stop: Effect.Effect<void>
  /** SIGKILL and wait for exit. No-op when stopped. */
  readonly kill: Effect.Effect<void>
  /** Starts again on the same port with the same configuration, and waits until ready. No-op when running. */
  readonly start: Effect.Effect<void, RedisServerError>
  /** `stop` then `start`. */
  readonly restart: Effect.Effect<void, RedisServerError>
  /**
   * Sends one command on a fresh connection (an ioredis client speaking RESP2, authenticating first when
   * credentials are configured) and returns its reply. An error reply is a value; only connection problems and
   * timeouts fail.
   */
  readonly command: (...args: ReadonlyArray<string>) => Effect.Effect<RedisReply, RedisServerError>
}

/**
 * The {@link RedisServer} as a service, provided by {@link layer}.
 *
 * @since 0.1.0
 * @category tags
 */
export const RedisServer: Context.Tag<RedisServer, RedisServer> = Context.GenericTag<RedisServer>(
  "@steadfast/testing/RedisServer"
)

const HOST = "127.0.0.1"
const EXIT_TIMEOUT = Duration.seconds(5)

const fail = (message: string, cause?: unknown) =>
  new RedisServerError(cause === undefined ? { message } : { message, cause })

const freePort: Effect.Effect<number, RedisServerError> = Effect.map(
  Effect.mapError(freePorts(HOST, 1), (cause) => fail("cannot find a free port", cause)),
  (ports) => ports[0]!
)

const openssl = (dir: string, args: ReadonlyArray<string>) =>
  Proc.run(Command.make("openssl", ...args).pipe(Command.workingDirectory(dir)), Duration.seconds(10)).pipe(
    Effect.mapError((cause) =>
      fail(`openssl ${args[0]} failed: ${cause === "timeout" ? "no exit after 10 seconds" : cause.message}`, cause)
    ),
    Effect.flatMap((out) =>
      out.code === 0 ? Effect.void : Effect.fail(fail(`openssl ${args[0]} failed (code ${out.code}): ${out.stderr}`))
    )
  )

const makeCertificates = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    const days = ["-days", "2"]
    yield* openssl(dir, ["req", "-x509", ...ec, ...days, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=steadfast-test-ca"])
    yield* openssl(dir, ["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
    yield* fs.writeFileString(
      path.join(dir, "server.ext"),
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    yield* openssl(dir, [
      "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", "server.crt", ...days, "-extfile", "server.ext"
    ])
    const caFile = path.join(dir, "ca.crt")
    return {
      ca: yield* fs.readFileString(caFile),
      caFile,
      certFile: path.join(dir, "server.crt"),
      keyFile: path.join(dir, "server.key")
    } satisfies TlsFiles
  }).pipe(
    Effect.catchTag("SystemError", "BadArgument", (cause) =>
      Effect.fail(fail(`cannot write the certificates: ${cause.message}`, cause)))
  )

/** Redis config files accept double-quoted strings with C-like escapes. */
const quote = (value: string): string => JSON.stringify(value)

const configFile = (options: Options, dir: string, logPath: string, port: number, tls: TlsFiles | undefined): string =>
  [
    ...(tls
      ? [
        "port 0",
        `tls-port ${port}`,
        `tls-cert-file ${quote(tls.certFile)}`,
        `tls-key-file ${quote(tls.keyFile)}`,
        `tls-ca-cert-file ${quote(tls.caFile)}`,
        "tls-auth-clients no"
      ]
      : [`port ${port}`]),
    `bind ${HOST}`,
    `save ""`,
    "appendonly no",
    "daemonize no",
    "enable-debug-command yes",
    `dir ${quote(dir)}`,
    `logfile ${quote(logPath)}`,
    ...(options.password === undefined ? [] : [`requirepass ${quote(options.password)}`]),
    ...(options.users ?? []).map((user) =>
      `user ${quote(user.username)} ${user.rules ?? "on ~* &* +@all"} ${quote(`>${user.password}`)}`
    ),
    ...(options.config ?? [])
  ].join("\n") + "\n"

/**
 * A client for one admin command: one connection, no reconnection, RESP2, and nothing sent but the command (and
 * `AUTH`): no `HELLO`, no `CLIENT SETINFO`, no ready check (which would also wait while the server loads, where
 * the caller wants the `LOADING` reply).
 */
const connect = (port: number, tls: TlsFiles | undefined): Redis =>
  new Redis({
    host: HOST,
    port,
    ...(tls ? { tls: { ca: tls.ca } } : {}),
    protocol: 2,
    disableClientInfo: true,
    enableReadyCheck: false,
    enableOfflineQueue: true,
    retryStrategy: () => null,
    // when the socket is still connecting at `disconnect` (a timeout), destroy it at once rather than after 2 s
    disconnectTimeout: 0,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false
  })

/**
 * Starts `redis-server` as a scoped resource and waits until it accepts connections.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<RedisServer, RedisServerError, Scope.Scope> =>
  live(Platform.provide(Effect.gen(function*() {
    const platform = yield* Effect.context<Platform.Platform>()
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = yield* Effect.acquireRelease(
      Effect.mapError(
        fs.makeTempDirectory({ prefix: "steadfast-redis-" }),
        (cause) => fail("cannot create a temporary directory", cause)
      ),
      (dir) => Effect.orDie(fs.remove(dir, { recursive: true, force: true }))
    )
    const port = options.port ?? (yield* freePort)
    const tls = options.tls === true ? yield* makeCertificates(dir) : undefined
    const configPath = path.join(dir, "redis.conf")
    const logPath = path.join(dir, "redis.log")
    yield* Effect.mapError(
      fs.writeFileString(configPath, configFile(options, dir, logPath, port, tls)),
      (cause) => fail("cannot write redis.conf", cause)
    )
    const startTimeout = Duration.decode(options.startTimeout ?? Duration.seconds(10))
    const commandTimeout = Duration.decode(options.commandTimeout ?? Duration.seconds(5))
    const firstUser = options.users?.[0]
    const auth: ReadonlyArray<string> | undefined = options.password !== undefined
      ? [options.password]
      : firstUser && [firstUser.username, firstUser.password]
    const redisServer = Command.make(
      "redis-server",
      ...(options.sentinel === true ? [configPath, "--sentinel"] : [configPath])
    )

    let current: Proc.Child | undefined

    const readLog = Effect.orElseSucceed(fs.readFileString(logPath), () => "") // not created yet
    const logTail = (proc: Proc.Child) =>
      Effect.gen(function*() {
        yield* proc.stderrRead(Duration.seconds(1))
        return `\n--- redis.log ---\n${Proc.tail(yield* readLog)}\n--- stderr ---\n${Proc.tail(proc.stderr())}`
      })

    const spawn = Effect.map(Proc.spawn(redisServer), (proc) => {
      current = proc
      return proc
    })

    const signal = (sig: NodeJS.Signals) =>
      Effect.gen(function*() {
        const proc = current
        if (proc === undefined) return
        if (!(yield* proc.signal(sig, EXIT_TIMEOUT)) && sig !== "SIGKILL") {
          yield* proc.signal("SIGKILL", EXIT_TIMEOUT)
        }
        yield* proc.release
        if (current === proc) current = undefined
      })

    const kill = live(signal("SIGKILL"))
    const stop = live(signal("SIGTERM"))

    /**
     * One command on a fresh ioredis connection, after `AUTH` when credentials are configured, both in one write
     * (a pipeline): a server that refuses the connection at once (`maxclients`) answers the first command with the
     * refusal, then resets the connection, so a second write would only get EPIPE. An error reply (also to `AUTH`,
     * which then is the result) is a value. The connection is destroyed (not just ended, which would wait for a
     * stalled server's FIN) as soon as the reply is in, and on timeout and interruption.
     */
    const send = (args: ReadonlyArray<string>, timeout: Duration.Duration): Effect.Effect<RedisReply, RedisServerError> =>
      live(
        Effect.async<RedisReply, RedisServerError>((resume) => {
          const [name, ...rest] = args
          if (name === undefined) return resume(Effect.fail(fail("command: no command given")))
          const client = connect(port, tls)
          let connectionError: Error | undefined
          client.on("error", (error: Error) => {
            connectionError ??= error
          })
          const close = () => {
            // `disconnect` on a connection that is already closed (refused) would leave ioredis' timer behind,
            // waiting for a `close` event that has come and gone
            if (client.status !== "end") client.disconnect()
            client.stream?.destroy()
          }
          const pipeline = client.pipeline()
          if (auth) pipeline.call("AUTH", ...auth)
          pipeline.call(Reply.wireName(name), ...rest)
          type Results = ReadonlyArray<[Error | null, unknown]> | null
          const outcome = (results: Results): Effect.Effect<RedisReply, RedisServerError> => {
            const [authError] = auth ? results?.[0] ?? [null] : [null]
            if (Reply.isReplyError(authError)) return Effect.succeed(Reply.fromClient(authError))
            const [error, value] = results?.[results.length - 1] ?? [new Error("no reply")]
            if (error === null) return Effect.succeed(Reply.fromClient(value, args))
            if (Reply.isReplyError(error)) return Effect.succeed(Reply.fromClient(error))
            const cause = connectionError ?? error
            return Effect.fail(fail(`${name}: ${cause.message}`, cause))
          }
          pipeline.exec().then(
            (results) => {
              close()
              resume(outcome(results))
            },
            (error: Error) => {
              close()
              resume(Effect.fail(fail(`${name}: ${(connectionError ?? error).message}`, connectionError ?? error)))
            }
          )
          return Effect.sync(close)
        }).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => fail(`${args[0]}: no reply after ${Duration.format(timeout)}`)
          })
        )
      )

    const command = (...args: ReadonlyArray<string>) => send(args, commandTimeout)

    /**
     * Whether the `INFO server` reply comes from our process: it must report our pid, so that a server squatting
     * on the port is not mistaken for ours (ours then exits with "Address already in use", reported with the
     * log). When INFO is refused (an ACL user without `+info`), fall back to the log.
     */
    const isOurs = (proc: Proc.Child, info: RedisReply): Effect.Effect<boolean> =>
      typeof info === "string"
        ? Effect.succeed(info.includes(`process_id:${proc.pid}\r\n`))
        : Reply.isErrorReply(info) && !info.message.startsWith("LOADING")
        ? Effect.map(readLog, (log) => log.includes("Ready to accept"))
        : Effect.succeed(false)

    const waitReady = (proc: Proc.Child): Effect.Effect<void, RedisServerError> =>
      Effect.gen(function*() {
        while (true) {
          const exit = proc.exit()
          if (exit !== undefined) {
            return yield* Effect.fail(fail(`redis-server ${exit} while starting on port ${port}${yield* logTail(proc)}`))
          }
          const reply = yield* Effect.option(send(["INFO", "server"], Duration.seconds(1)))
          if (reply._tag === "Some" && (yield* isOurs(proc, reply.value))) return
          yield* Effect.sleep(Duration.millis(20))
        }
      }).pipe(
        Effect.timeout(startTimeout),
        Effect.catchTag("TimeoutException", () =>
          Effect.flatMap(logTail(proc), (log) =>
            Effect.fail(
              fail(`redis-server not accepting connections on port ${port} after ${Duration.format(startTimeout)}${log}`)
            )))
      )

    const start = live(Effect.suspend(() => {
      const previous = current
      if (previous !== undefined && previous.exit() === undefined) return Effect.void
      // a process that exited on its own (crash, SHUTDOWN) is released before the next one is spawned
      return Effect.zipRight(previous === undefined ? Effect.void : previous.release, spawn).pipe(
        Effect.mapError((cause) => fail(`redis-server could not be spawned on port ${port}: ${cause.message}`, cause)),
        Effect.flatMap(waitReady),
        Effect.provide(platform)
      )
    }))

    // Registered before the first spawn: whatever happens from here on, the process is killed and reaped.
    yield* Effect.addFinalizer(() => kill)
    yield* start

    const scheme = tls ? "rediss" : "redis"
    const urlWithoutAuth = `${scheme}://${HOST}:${port}`
    const credentials = options.password !== undefined
      ? `:${encodeURIComponent(options.password)}@`
      : firstUser
      ? `${encodeURIComponent(firstUser.username)}:${encodeURIComponent(firstUser.password)}@`
      : ""
    return {
      host: HOST,
      port,
      url: `${scheme}://${credentials}${HOST}:${port}`,
      urlWithoutAuth,
      ...(options.password !== undefined
        ? { password: options.password }
        : firstUser
        ? { username: firstUser.username, password: firstUser.password }
        : {}),
      ...(tls ? { tls } : {}),
      pid: Effect.sync(() => (current?.exit() === undefined ? current?.pid : undefined)),
      stop,
      kill,
      start,
      restart: Effect.zipRight(stop, start),
      command
    } satisfies RedisServer
  })))

/**
 * A layer providing a {@link RedisServer} for the lifetime of the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<RedisServer, RedisServerError> =>
  Layer.scoped(RedisServer, make(options))
