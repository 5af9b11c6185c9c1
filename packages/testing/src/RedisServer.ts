/**
 * A real `redis-server` process as a scoped resource, for tests.
 *
 * `make` spawns `redis-server` (from `PATH`) on a free port of 127.0.0.1 with persistence off, a temporary
 * directory and a log file, and waits until it accepts connections. Closing the scope kills the process, waits
 * for it to exit and removes the directory, also on failure and interruption.
 *
 * @since 0.1.0
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Tls from "node:tls"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { live } from "./internal/live.js"
import { freePorts } from "./internal/ports.js"
import * as Resp from "./internal/resp.js"

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
export type RedisReply = Resp.Reply

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
   * Sends one command on a fresh connection (authenticating first when credentials are configured) and
   * returns its reply. An error reply is a value; only connection problems and timeouts fail.
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

// Last line of defence: if the test process exits without closing a scope, take the servers with it.
const running = new Set<ChildProcess.ChildProcess>()
let exitHookInstalled = false
const track = (child: ChildProcess.ChildProcess): void => {
  running.add(child)
  child.once("exit", () => running.delete(child))
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once("exit", () => running.forEach((c) => c.kill("SIGKILL")))
  }
}

interface Process {
  readonly child: ChildProcess.ChildProcess
  readonly exited: Promise<void>
  exit: string | undefined
  stderr: string
}

const fail = (message: string, cause?: unknown) =>
  new RedisServerError(cause === undefined ? { message } : { message, cause })

const freePort: Effect.Effect<number, RedisServerError> = Effect.map(
  Effect.mapError(freePorts(HOST, 1), (cause) => fail("cannot find a free port", cause)),
  (ports) => ports[0]!
)

const openssl = (dir: string, args: ReadonlyArray<string>): Effect.Effect<void, RedisServerError> =>
  Effect.async((resume) => {
    const child = ChildProcess.execFile("openssl", args, { cwd: dir, timeout: 10_000 }, (error, _out, stderr) =>
      resume(error ? Effect.fail(fail(`openssl ${args[0]} failed: ${stderr || error.message}`, error)) : Effect.void)
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const makeCertificates = (dir: string): Effect.Effect<TlsFiles, RedisServerError> =>
  Effect.gen(function*() {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    const days = ["-days", "2"]
    yield* openssl(dir, ["req", "-x509", ...ec, ...days, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=steadfast-test-ca"])
    yield* openssl(dir, ["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
    Fs.writeFileSync(
      Path.join(dir, "server.ext"),
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    yield* openssl(dir, [
      "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", "server.crt", ...days, "-extfile", "server.ext"
    ])
    const caFile = Path.join(dir, "ca.crt")
    return {
      ca: Fs.readFileSync(caFile, "utf8"),
      caFile,
      certFile: Path.join(dir, "server.crt"),
      keyFile: Path.join(dir, "server.key")
    }
  })

/** Redis config files accept double-quoted strings with C-like escapes. */
const quote = (value: string): string => JSON.stringify(value)

const configFile = (options: Options, dir: string, port: number, tls: TlsFiles | undefined): string =>
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
    `logfile ${quote(Path.join(dir, "redis.log"))}`,
    ...(options.password === undefined ? [] : [`requirepass ${quote(options.password)}`]),
    ...(options.users ?? []).map((user) =>
      `user ${quote(user.username)} ${user.rules ?? "on ~* &* +@all"} ${quote(`>${user.password}`)}`
    ),
    ...(options.config ?? [])
  ].join("\n") + "\n"

const tail = (text: string, max = 2000): string => (text.length > max ? "..." + text.slice(-max) : text)

/**
 * Starts `redis-server` as a scoped resource and waits until it accepts connections.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<RedisServer, RedisServerError, Scope.Scope> =>
  live(Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "steadfast-redis-")),
        catch: (cause) => fail("cannot create a temporary directory", cause)
      }),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const port = options.port ?? (yield* freePort)
    const tls = options.tls === true ? yield* makeCertificates(dir) : undefined
    const configPath = Path.join(dir, "redis.conf")
    const logPath = Path.join(dir, "redis.log")
    Fs.writeFileSync(configPath, configFile(options, dir, port, tls))
    const startTimeout = Duration.decode(options.startTimeout ?? Duration.seconds(10))
    const commandTimeout = Duration.decode(options.commandTimeout ?? Duration.seconds(5))
    const firstUser = options.users?.[0]
    const auth: ReadonlyArray<string> | undefined = options.password !== undefined
      ? [options.password]
      : firstUser && [firstUser.username, firstUser.password]

    let current: Process | undefined

    const readLog = (): string => {
      try {
        return Fs.readFileSync(logPath, "utf8")
      } catch {
        return "" // not created yet
      }
    }
    const logTail = (proc: Process): string =>
      `\n--- redis.log ---\n${tail(readLog())}\n--- stderr ---\n${tail(proc.stderr)}`

    const spawn = Effect.sync((): Process => {
      const args = options.sentinel === true ? [configPath, "--sentinel"] : [configPath]
      const child = ChildProcess.spawn("redis-server", args, { stdio: ["ignore", "ignore", "pipe"] })
      track(child)
      const proc: Process = {
        child,
        exit: undefined,
        stderr: "",
        exited: new Promise<void>((resolve) => {
          child.once("exit", (code, signal) => {
            proc.exit = `exited (code ${code}, signal ${signal})`
            resolve()
          })
          child.on("error", (error) => {
            // spawn failures (ENOENT) emit "error" and no "exit"; other errors (a failed kill) are harmless
            if (child.pid === undefined) {
              proc.exit = `could not be spawned: ${error.message}`
              resolve()
            }
          })
        })
      }
      child.stderr?.on("data", (chunk: Buffer) => {
        proc.stderr = tail(proc.stderr + chunk.toString("utf8"))
      })
      current = proc
      return proc
    })

    const waitExit = (proc: Process) =>
      Effect.promise(() => proc.exited).pipe(
        Effect.timeout(EXIT_TIMEOUT),
        Effect.as(true),
        Effect.orElseSucceed(() => false)
      )

    const signal = (sig: NodeJS.Signals) =>
      Effect.gen(function*() {
        const proc = current
        if (proc === undefined) return
        if (proc.exit === undefined) {
          proc.child.kill(sig)
          if (!(yield* waitExit(proc)) && sig !== "SIGKILL") {
            proc.child.kill("SIGKILL")
            yield* waitExit(proc)
          }
        }
        if (current === proc) current = undefined
      })

    const kill = live(signal("SIGKILL"))
    const stop = live(signal("SIGTERM"))

    const send = (args: ReadonlyArray<string>, timeout: Duration.Duration): Effect.Effect<RedisReply, RedisServerError> =>
      live(
        Effect.async<RedisReply, RedisServerError>((resume) => {
          const name = args[0] ?? "(empty)"
          const socket: Net.Socket = tls
            ? Tls.connect({ host: HOST, port, ca: tls.ca })
            : Net.connect({ host: HOST, port })
          const decoder = new Resp.Decoder()
          const replies: Array<RedisReply> = []
          const expected = auth ? 2 : 1
          let settled = false
          const settle = (effect: Effect.Effect<RedisReply, RedisServerError>) => {
            if (settled) return
            settled = true
            socket.destroy()
            resume(effect)
          }
          socket.on("data", (chunk: Buffer) => {
            try {
              replies.push(...decoder.push(chunk))
            } catch (cause) {
              return settle(Effect.fail(fail(`${name}: invalid reply`, cause)))
            }
            if (replies.length < expected) return
            const authReply = auth ? replies[0]! : null
            settle(Effect.succeed(Resp.isErrorReply(authReply) ? authReply : replies[expected - 1]!))
          })
          socket.on("error", (cause) => settle(Effect.fail(fail(`${name}: ${cause.message}`, cause))))
          socket.on("close", () => settle(Effect.fail(fail(`${name}: connection closed before the reply`))))
          socket.write(Buffer.concat([...(auth ? [Resp.encode(["AUTH", ...auth])] : []), Resp.encode(args)]))
          return Effect.sync(() => socket.destroy())
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
    const isOurs = (proc: Process, info: RedisReply): boolean =>
      typeof info === "string"
        ? info.includes(`process_id:${proc.child.pid}\r\n`)
        : Resp.isErrorReply(info) && !info.message.startsWith("LOADING") && readLog().includes("Ready to accept")

    const waitReady = (proc: Process): Effect.Effect<void, RedisServerError> =>
      Effect.gen(function*() {
        while (true) {
          if (proc.exit !== undefined) {
            return yield* Effect.fail(fail(`redis-server ${proc.exit} while starting on port ${port}${logTail(proc)}`))
          }
          const reply = yield* Effect.option(send(["INFO", "server"], Duration.seconds(1)))
          if (reply._tag === "Some" && isOurs(proc, reply.value)) return
          yield* Effect.sleep(Duration.millis(20))
        }
      }).pipe(
        Effect.timeoutFail({
          duration: startTimeout,
          onTimeout: () =>
            fail(
              `redis-server not accepting connections on port ${port} after ${Duration.format(startTimeout)}${
                logTail(proc)
              }`
            )
        })
      )

    const start = live(Effect.suspend(() => {
      if (current !== undefined && current.exit === undefined) return Effect.void
      return Effect.flatMap(spawn, waitReady)
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
      pid: Effect.sync(() => (current?.exit === undefined ? current?.child.pid : undefined)),
      stop,
      kill,
      start,
      restart: Effect.zipRight(stop, start),
      command
    } satisfies RedisServer
  }))

/**
 * A layer providing a {@link RedisServer} for the lifetime of the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<RedisServer, RedisServerError> =>
  Layer.scoped(RedisServer, make(options))
