/**
 * A scripted {@link RedisConnection.RedisConnection} for unit tests: an in-process key/value store (string values,
 * TTLs on Effect's `Clock`, so `TestClock.adjust` expires them) where every command first asks a **script** what
 * happens to it — answered, never sent, sent with its reply lost, rejected, slow, or failed for good — so the
 * decision logic above the connection (retries, the breaker, reconciliation) is tested under `TestClock`, without
 * sockets and without real sleeps. What only a socket shows stays in the real-server tests.
 *
 * ```ts
 * it.effect("a write whose reply is lost may have run", () =>
 *   Effect.gen(function*() {
 *     const scripted = yield* ScriptedConnection.ScriptedConnection
 *     const redis = yield* RedisConnection.RedisConnection
 *     yield* scripted.push("set", ScriptedConnection.replyLost)
 *     const error = yield* Effect.flip(redis.set("k", "v", Option.none()))
 *     expect(Errors.mayHaveRun(error)).toBe(true)
 *     expect(yield* scripted.peek("k")).toBe("v")
 *   }).pipe(Effect.provide(ScriptedConnection.layer({ commandTimeout: "500 millis" }))))
 * ```
 *
 * How a command's outcome is chosen, first match wins:
 *
 * 1. the connection is {@link ScriptedConnection.down down}: `notSent`, and the script is not consulted;
 * 2. the next outcome {@link ScriptedConnection.push pushed} for this command, then one pushed for `"*"`;
 * 3. the {@link ScriptedConnection.setScript script function}, unless it answers `undefined`;
 * 4. the {@link ScriptedConnection.setDefault default} for this command, then the default for `"*"`;
 * 5. {@link ok}.
 *
 * Differences from the real connection, on purpose:
 *
 * - the deadline ({@link RedisConfig.RedisConfig.commandTimeout}) fires exactly at `commandTimeout` (the real one
 *   fires up to a tenth of it early, see `internal/deadlines.ts`), so a test can assert the time of a timeout;
 * - `getBatched` and `setBatched` behave as `get` and `set` (one command per call, no coalescing); they are
 *   scripted under the names `"get"` and `"set"` (the operation names the real batches report), and logged with
 *   `batched: true`;
 * - `execute` has no ioredis client to hand out: it fails with a `PermanentError` (`unknown_command`);
 * - the store holds strings only; a `WRONGTYPE` is scripted with {@link permanent}.
 *
 * @since 0.2.0
 */
import { Errors } from "@steadfast/resilience"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as RedisConfig from "./RedisConfig.js"
import * as RedisConnection from "./RedisConnection.js"

// -----------------------------------------------------------------------------------------------------------------
// Outcomes
// -----------------------------------------------------------------------------------------------------------------

/**
 * What happens to one command. Build them with {@link ok}, {@link notSent}, {@link replyLost}, {@link rejected},
 * {@link slow} and {@link permanent}.
 *
 * @since 0.2.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Ok" }
  | { readonly _tag: "NotSent" }
  | { readonly _tag: "ReplyLost" }
  | { readonly _tag: "Rejected"; readonly reason: Errors.TransientReason }
  | { readonly _tag: "Slow"; readonly duration: Duration.Duration; readonly then: Outcome }
  | { readonly _tag: "Permanent"; readonly reason: Errors.PermanentReason }

/**
 * Applied and answered.
 *
 * @since 0.2.0
 * @category outcomes
 */
export const ok: Outcome = { _tag: "Ok" }

/**
 * Never left the client (no writeable socket): not applied; fails with a `TransientError`
 * (`connection_unavailable`, outcome `not_sent`).
 *
 * @since 0.2.0
 * @category outcomes
 */
export const notSent: Outcome = { _tag: "NotSent" }

/**
 * Sent and applied, then the socket closed before the reply came back: fails with a `TransientError`
 * (`connection_closed`, outcome `unknown`).
 *
 * @since 0.2.0
 * @category outcomes
 */
export const replyLost: Outcome = { _tag: "ReplyLost" }

/**
 * The server answered with an error reply without running the command (`LOADING`, `READONLY`, `BUSY`, `OOM`, ...):
 * not applied; fails with a `TransientError` with this reason and outcome `rejected`.
 *
 * @since 0.2.0
 * @category outcomes
 */
export const rejected = (reason: Errors.TransientReason = "loading"): Outcome => ({ _tag: "Rejected", reason })

/**
 * The server answers after `duration` on Effect's clock, then behaves as `then` (by default {@link ok}).
 *
 * If `duration` is shorter than the command deadline, the caller waits for it. Otherwise the caller fails **at the
 * deadline** with a `TransientError` (`timeout`, outcome `unknown`), and the command is still applied at `duration`,
 * like a stalled server that processes it late. Either way, once sent, the command is applied at `duration` even if
 * the caller is interrupted or the connection goes {@link ScriptedConnection.down down} meanwhile (a caller still
 * waiting then fails with `connection_closed`, outcome `unknown`).
 *
 * @since 0.2.0
 * @category outcomes
 */
export const slow = (duration: Duration.DurationInput, then: Outcome = ok): Outcome => ({
  _tag: "Slow",
  duration: Duration.decode(duration),
  then
})

/**
 * An error that will happen again: not applied; fails with a `PermanentError` with this reason
 * (`wrong_type`, `auth`, `no_permission`, ...).
 *
 * @since 0.2.0
 * @category outcomes
 */
export const permanent = (reason: Errors.PermanentReason = "wrong_type"): Outcome => ({ _tag: "Permanent", reason })

// -----------------------------------------------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------------------------------------------

/**
 * The commands a script can target, by the operation names the real connection reports (`getBatched` is `"get"`,
 * `setBatched` is `"set"`).
 *
 * @since 0.2.0
 * @category models
 */
export type Command = "get" | "set" | "mget" | "mset" | "del" | "scan" | "ping"

/**
 * One command as the script sees it.
 *
 * @since 0.2.0
 * @category models
 */
export interface Request {
  readonly command: Command
  /** The keys it touches (none for `ping`; for `scan`, the pattern). */
  readonly keys: ReadonlyArray<string>
  /** Whether it came through `getBatched` / `setBatched`. */
  readonly batched: boolean
  /** How many commands of this name came before it (0 for the first), whatever their outcome. */
  readonly index: number
}

/**
 * A script function: the outcome of a command, or `undefined` to fall through to the defaults.
 *
 * @since 0.2.0
 * @category models
 */
export type Script = (request: Request) => Outcome | undefined

/**
 * One command received, as the {@link ScriptedConnection.log log} records it.
 *
 * @since 0.2.0
 * @category models
 */
export interface LogEntry {
  /** `"execute"` for a raw command (always refused). */
  readonly command: Command | "execute"
  readonly keys: ReadonlyArray<string>
  readonly batched: boolean
  /** The outcome it got (`notSent` while the connection was down). */
  readonly outcome: Outcome
  /** When it was received, in ms on Effect's clock. */
  readonly at: number
  /** Whether the store has run it (a `slow` command becomes applied at its time). */
  readonly applied: boolean
  /** When it was applied, in ms on Effect's clock. */
  readonly appliedAt: Option.Option<number>
}

/**
 * Options of {@link make} / {@link layer}: any {@link RedisConfig.Options} (the URL defaults to
 * `redis://scripted:6379`, so `server` reads `scripted:6379`), notably `commandTimeout`, the deadline of every
 * command (default 2 s), and `maxConnections`, the length of `status`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options extends Partial<RedisConfig.Options> {
  /**
   * The shard serving a key, as a Cluster connection answers it (`RedisConnection.shardOf`): a cache over this
   * connection then keeps a breaker per shard, so a Cluster's per-shard decisions can be scripted under `TestClock`
   * (fail one shard's keys with a {@link Script}). Without it the connection has no shards, as a standalone one.
   *
   * @since 0.6.0
   */
  readonly shardOf?: ((key: string) => string | undefined) | undefined
}

/**
 * The control handle: the connection itself, its script, its up/down switch, its store and its log.
 *
 * @since 0.2.0
 * @category models
 */
export interface ScriptedConnection {
  /** The scripted `RedisConnection` (also what {@link layer} provides as `RedisConnection.RedisConnection`). */
  readonly connection: RedisConnection.RedisConnection
  /** Queues outcomes for the next calls of `command` (`"*"`: of any command), one call each, in order. */
  readonly push: (command: Command | "*", ...outcomes: ReadonlyArray<Outcome>) => Effect.Effect<void>
  /** The outcome of `command` (`"*"`: of any command) when nothing was pushed and the script function passed. */
  readonly setDefault: (command: Command | "*", outcome: Outcome) => Effect.Effect<void>
  /** Installs a script function (`undefined` removes it). */
  readonly setScript: (script: Script | undefined) => Effect.Effect<void>
  /** Forgets pushed outcomes, defaults and the script function: every command is {@link ok} again. */
  readonly resetScript: Effect.Effect<void>
  /**
   * Takes the connection down: every command is {@link notSent} until {@link up}, callers still waiting for a
   * {@link slow} reply fail with `connection_closed` (their commands still apply at their time), and `status`
   * reads `"reconnecting"`. With `reconnecting: false` no reconnect is under way (`status` reads `"end"`): `ready`
   * fails at once instead of waiting for {@link up}.
   */
  readonly down: (options?: { readonly reconnecting?: boolean }) => Effect.Effect<void>
  /** Brings the connection back: `ready` calls waiting for it succeed. */
  readonly up: Effect.Effect<void>
  readonly isUp: Effect.Effect<boolean>
  /** The value under `key` in the store, `null` if absent or expired. Not a command: neither scripted nor logged. */
  readonly peek: (key: string) => Effect.Effect<string | null>
  /** `PTTL`'s answer: ms left, `-1` for a key without a TTL, `-2` for a missing key. Not a command. */
  readonly pttl: (key: string) => Effect.Effect<number>
  /** The keys in the store, expired ones left out, sorted. Not a command. */
  readonly keys: Effect.Effect<ReadonlyArray<string>>
  /** Writes the store directly (seeding a test). Not a command. */
  readonly put: (key: string, value: string, ttl?: Duration.DurationInput) => Effect.Effect<void>
  /** Every command received so far, in order. */
  readonly log: Effect.Effect<ReadonlyArray<LogEntry>>
  readonly clearLog: Effect.Effect<void>
  /** Commands sent but not applied yet (`slow` ones still under way). */
  readonly inFlight: Effect.Effect<number>
}

/**
 * The control handle's tag, provided by {@link layer} beside `RedisConnection.RedisConnection`.
 *
 * @since 0.2.0
 * @category tags
 */
export const ScriptedConnection = Context.GenericTag<ScriptedConnection>("@steadfast/redis/ScriptedConnection")

// -----------------------------------------------------------------------------------------------------------------
// Glob matching
// -----------------------------------------------------------------------------------------------------------------

/**
 * Redis' glob matching (`stringmatchlen`, case-sensitive), as `SCAN ... MATCH` and `KEYS` use it: `*` any run of
 * characters, `?` any one character, `[abc]`, `[^abc]`, `[a-z]` a set, `\x` the character `x` itself. `*` alone matches
 * every key, the empty one too (`SCAN` and `KEYS` special-case it); `**` does not match the empty key, as in Redis 7.0.
 * One difference: this matches UTF-16 code units where Redis matches bytes (`?` is one non-ASCII character here, one
 * byte of its UTF-8 in Redis).
 *
 * @since 0.2.0
 * @category utils
 */
export const matchGlob = (pattern: string, key: string): boolean => {
  if (pattern === "*") return true
  const skipLonger = { value: false }
  return globFrom(pattern, 0, key, 0, skipLonger, 0)
}

const globFrom = (
  pattern: string,
  p0: number,
  key: string,
  s0: number,
  skipLonger: { value: boolean },
  nesting: number
): boolean => {
  if (nesting > 1000) return false
  let p = p0
  let s = s0
  const pl = pattern.length
  const sl = key.length
  while (p < pl && s < sl) {
    const c = pattern[p]!
    if (c === "*") {
      while (p + 1 < pl && pattern[p + 1] === "*") p++
      if (p + 1 === pl) return true
      while (s < sl) {
        if (globFrom(pattern, p + 1, key, s, skipLonger, nesting + 1)) return true
        if (skipLonger.value) return false
        s++
      }
      skipLonger.value = true
      return false
    } else if (c === "?") {
      s++
    } else if (c === "[") {
      p++
      const not = pattern[p] === "^"
      if (not) p++
      let match = false
      while (true) {
        if (pattern[p] === "\\" && pl - p >= 2) {
          p++
          if (pattern[p] === key[s]) match = true
        } else if (pattern[p] === "]") {
          break
        } else if (p >= pl) {
          // An unterminated set ends with the pattern.
          p--
          break
        } else if (pl - p >= 3 && pattern[p + 1] === "-") {
          let start = pattern.charCodeAt(p)
          let end = pattern.charCodeAt(p + 2)
          if (start > end) [start, end] = [end, start]
          const ch = key.charCodeAt(s)
          p += 2
          if (ch >= start && ch <= end) match = true
        } else if (pattern[p] === key[s]) {
          match = true
        }
        p++
      }
      if (not) match = !match
      if (!match) return false
      s++
    } else {
      if (c === "\\" && pl - p >= 2) p++
      if (pattern[p] !== key[s]) return false
      s++
    }
    p++
    if (s === sl) {
      while (p < pl && pattern[p] === "*") p++
      break
    }
  }
  return p >= pl && s === sl
}

// -----------------------------------------------------------------------------------------------------------------
// The connection
// -----------------------------------------------------------------------------------------------------------------

interface Entry {
  readonly value: string
  /** ms on Effect's clock; `undefined`: no TTL. */
  readonly expiresAt: number | undefined
}

interface MutableLogEntry {
  readonly command: Command | "execute"
  readonly keys: ReadonlyArray<string>
  readonly batched: boolean
  readonly outcome: Outcome
  readonly at: number
  appliedAt: number | undefined
}

const ttlMillis = (ttl: Duration.Duration) => Math.max(1, Math.ceil(Duration.toMillis(ttl)))

/**
 * Builds a scripted connection and its control handle. Requires a `Scope`: a `slow` command still under way when it
 * closes is dropped. Invalid options are a defect (a bug in the test), not an error.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<ScriptedConnection, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { shardOf, ...configOptions } = options
    const config = yield* Either.match(RedisConfig.fromOptions({ ...configOptions, url: options.url ?? "redis://scripted:6379" }), {
      onLeft: (error) => Effect.dieMessage(`ScriptedConnection: invalid options: ${error}`),
      onRight: Effect.succeed
    })
    const url = yield* Either.match(RedisConfig.parseUrl(config.url), {
      onLeft: (problem) => Effect.dieMessage(`ScriptedConnection: invalid URL: ${problem}`),
      onRight: Effect.succeed
    })
    const scope = yield* Effect.scope
    // The deadline of the commands started now (`setCommandTimeout` changes it; commands in flight keep theirs).
    let deadline = config.commandTimeout

    // The server: survives down/up, as a real Redis survives a dropped socket.
    const store = new Map<string, Entry>()
    const cursors = new Map<string, string>()
    let nextCursor = 1

    // The script.
    const queues = new Map<Command | "*", Array<Outcome>>()
    const defaults = new Map<Command | "*", Outcome>()
    let script: Script | undefined
    const counts = new Map<Command, number>()

    // The socket.
    let isUp = true
    let reconnecting = true
    /** Completed when the connection goes down: callers waiting for a reply fail. */
    let closed = yield* Deferred.make<void>()
    /** Completed when the connection comes back (or fails when the reconnect is abandoned). */
    let opened = yield* Deferred.make<void, Errors.RedisFailure>()

    const log: Array<MutableLogEntry> = []
    let inFlight = 0

    const live = (key: string, now: number): Entry | undefined => {
      const entry = store.get(key)
      if (entry === undefined) return undefined
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
        store.delete(key)
        return undefined
      }
      return entry
    }
    const write = (key: string, value: string, ttl: Option.Option<Duration.Duration>, now: number) => {
      store.set(key, { value, expiresAt: Option.isSome(ttl) ? now + ttlMillis(ttl.value) : undefined })
    }

    const choose = (request: Request): Outcome => {
      for (const name of [request.command, "*"] as const) {
        const queue = queues.get(name)
        if (queue !== undefined && queue.length > 0) return queue.shift()!
      }
      const scripted = script?.(request)
      if (scripted !== undefined) return scripted
      return defaults.get(request.command) ?? defaults.get("*") ?? ok
    }

    const transient = (
      operation: string,
      reason: Errors.TransientReason,
      outcome: Errors.Outcome,
      message: string
    ) => new Errors.TransientError({ operation, reason, outcome, message: `${message} (scripted ${operation})` })

    const replyMessage: Partial<Record<Errors.TransientReason, string>> = {
      loading: "LOADING Redis is loading the dataset in memory",
      busy: "BUSY Redis is busy running a script",
      try_again: "TRYAGAIN Multiple keys request during rehashing of slot",
      cluster_down: "CLUSTERDOWN The cluster is down",
      master_down: "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'",
      read_only: "READONLY You can't write against a read only replica.",
      out_of_memory: "OOM command not allowed when used memory > 'maxmemory'.",
      max_clients: "ERR max number of clients reached"
    }
    const permanentMessage: Partial<Record<Errors.PermanentReason, string>> = {
      wrong_type: "WRONGTYPE Operation against a key holding the wrong kind of value",
      auth: "NOAUTH Authentication required.",
      no_permission: "NOPERM this user has no permissions to run this command",
      syntax: "ERR syntax error",
      unknown_command: "ERR unknown command"
    }

    /**
     * Runs one command: logs it, asks the script, and applies `apply` (at once, or later for `slow`), answering
     * or failing as the outcome says.
     */
    const command = <A>(
      name: Command,
      keys: ReadonlyArray<string>,
      batched: boolean,
      apply: (now: number) => Either.Either<A, Errors.RedisFailure>
    ): Effect.Effect<A, Errors.RedisFailure> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const index = counts.get(name) ?? 0
        counts.set(name, index + 1)
        const outcome = isUp ? choose({ command: name, keys, batched, index }) : notSent
        const entry: MutableLogEntry = { command: name, keys, batched, outcome, at: now, appliedAt: undefined }
        log.push(entry)

        /** What the server does with the command (at `at`), and what the caller would be told. */
        const serve = (outcome: Outcome, at: number): Effect.Effect<A, Errors.RedisFailure> => {
          switch (outcome._tag) {
            case "Ok":
            case "ReplyLost": {
              entry.appliedAt = at
              const result = apply(at)
              return outcome._tag === "Ok"
                ? result
                : Effect.fail(transient(name, "connection_closed", "unknown", "Connection is closed (reply lost)"))
            }
            case "NotSent":
              return Effect.fail(
                transient(name, "connection_unavailable", "not_sent", "Stream isn't writeable and enableOfflineQueue options is false")
              )
            case "Rejected":
              return Effect.fail(
                transient(name, outcome.reason, "rejected", replyMessage[outcome.reason] ?? `${outcome.reason} error reply`)
              )
            case "Permanent":
              return Effect.fail(
                new Errors.PermanentError({
                  operation: name,
                  reason: outcome.reason,
                  message: `${permanentMessage[outcome.reason] ?? `${outcome.reason} error reply`} (scripted ${name})`
                })
              )
            case "Slow":
              return Effect.dieMessage("ScriptedConnection: slow is handled by the caller")
          }
        }

        if (outcome._tag !== "Slow") return yield* serve(outcome, now)

        // Sent: the server applies it at its time whatever becomes of the caller.
        let then = outcome.then
        let duration = Duration.toMillis(outcome.duration)
        while (then._tag === "Slow") {
          duration += Duration.toMillis(then.duration)
          then = then.then
        }
        const final = then
        inFlight++
        const server = yield* Effect.sleep(Duration.millis(duration)).pipe(
          Effect.zipRight(Clock.currentTimeMillis),
          Effect.flatMap((at) => Effect.exit(serve(final, at))),
          Effect.ensuring(Effect.sync(() => inFlight--)),
          Effect.forkIn(scope)
        )
        const lost = Deferred.await(closed).pipe(
          Effect.zipRight(Effect.fail(transient(name, "connection_closed", "unknown", "Connection is closed")))
        )
        const own = deadline
        const reply = duration < Duration.toMillis(own)
          ? Fiber.join(server).pipe(Effect.flatten)
          : Effect.sleep(own).pipe(
            Effect.zipRight(
              Effect.fail(transient(name, "timeout", "unknown", `${name} exceeded its ${Duration.toMillis(own)} ms deadline`))
            )
          )
        return yield* Effect.raceFirst(reply, lost)
      })

    const get = (key: string, batched: boolean) =>
      command("get", [key], batched, (now) => Either.right(live(key, now)?.value ?? null))
    const set = (key: string, value: string, ttl: Option.Option<Duration.Duration>, batched: boolean) =>
      command("set", [key], batched, (now) => Either.right(write(key, value, ttl, now)))

    const scan = (cursor: string, pattern: string, count: number) =>
      command("scan", [pattern], false, (now): Either.Either<readonly [string, ReadonlyArray<string>], Errors.RedisFailure> => {
        const after = cursor === "0" ? "" : cursors.get(cursor)
        if (after === undefined || !/^\d+$/.test(cursor)) {
          return Either.left(
            new Errors.PermanentError({ operation: "scan", reason: "invalid_argument", message: "ERR invalid cursor (scripted scan)" })
          )
        }
        if (!Number.isInteger(count) || count < 1) {
          return Either.left(
            new Errors.PermanentError({ operation: "scan", reason: "syntax", message: "ERR syntax error (scripted scan)" })
          )
        }
        // The cursor remembers the last key examined: every key present for the whole scan is returned exactly
        // once, whatever is added or deleted meanwhile (Redis promises at least once).
        const examined = [...store.keys()].filter((k) => cursor === "0" || k > after).sort().slice(0, count)
        const found = examined.filter((k) => live(k, now) !== undefined && matchGlob(pattern, k))
        const last = examined[examined.length - 1]
        const remaining = last !== undefined && [...store.keys()].some((k) => k > last)
        if (!remaining) return Either.right(["0", found] as const)
        const id = String(nextCursor++)
        cursors.set(id, last!)
        return Either.right([id, found] as const)
      })

    const ping = command("ping", [], false, () => Either.right(undefined))

    const ready: Effect.Effect<void, Errors.RedisFailure> = Effect.suspend(() => {
      if (isUp) return Effect.void
      if (!reconnecting) {
        return Effect.fail(
          transient("ready", "connection_unavailable", "not_sent", "Stream isn't writeable and enableOfflineQueue options is false")
        )
      }
      const own = deadline
      return Deferred.await(opened).pipe(
        Effect.timeoutFail({
          duration: own,
          onTimeout: () => transient("ready", "timeout", "not_sent", `no socket ready within ${Duration.toMillis(own)} ms`)
        })
      )
    })

    const connection = RedisConnection.RedisConnection.of({
      ...(shardOf === undefined ? {} : { shardOf }),
      config,
      commandTimeout: () => deadline,
      setCommandTimeout: (input) =>
        Either.match(RedisConfig.commandTimeoutFrom(input), {
          onLeft: Effect.fail,
          onRight: (timeout) => Effect.sync(() => void (deadline = timeout))
        }),
      server: RedisConfig.serverOf(url),
      execute: (operation) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          log.push({ command: "execute", keys: [], batched: false, outcome: permanent("unknown_command"), at: now, appliedAt: undefined })
          return Effect.fail(
            new Errors.PermanentError({
              operation,
              reason: "unknown_command",
              message: `the scripted connection does not support raw commands (execute "${operation}"): ` +
                "it has no ioredis client; use the named operations, or a real server"
            })
          )
        }),
      get: (key) => get(key, false),
      getBatched: (key) => get(key, true),
      setBatched: (key, value, ttl) => set(key, value, ttl, true),
      mget: (keys) =>
        keys.length === 0
          ? Effect.succeed([])
          : command("mget", keys, false, (now) => Either.right(keys.map((k) => live(k, now)?.value ?? null))),
      set: (key, value, ttl) => set(key, value, ttl, false),
      mset: (entries, ttl) =>
        entries.length === 0
          ? Effect.void
          : command("mset", entries.map(([k]) => k), false, (now) => {
            for (const [key, value] of entries) write(key, value, ttl, now)
            return Either.right(undefined)
          }),
      del: (keys) =>
        keys.length === 0
          ? Effect.succeed(0)
          : command("del", keys, false, (now) => {
            let n = 0
            for (const key of keys) {
              if (live(key, now) !== undefined) n++
              store.delete(key)
            }
            return Either.right(n)
          }),
      scan,
      ready,
      availability: () => (isUp ? "ready" : reconnecting ? "reconnecting" : "down"),
      ping,
      status: Effect.sync(() =>
        Array.from({ length: config.maxConnections }, (): RedisConnection.SocketStatus =>
          isUp ? "ready" : reconnecting ? "reconnecting" : "end")
      )
    })

    const handle: ScriptedConnection = {
      connection,
      push: (name, ...outcomes) =>
        Effect.sync(() => {
          const queue = queues.get(name) ?? []
          queue.push(...outcomes)
          queues.set(name, queue)
        }),
      setDefault: (name, outcome) => Effect.sync(() => void defaults.set(name, outcome)),
      setScript: (f) => Effect.sync(() => void (script = f)),
      resetScript: Effect.sync(() => {
        queues.clear()
        defaults.clear()
        script = undefined
      }),
      down: (options) =>
        Effect.gen(function*() {
          const wasUp = isUp
          const wasReconnecting = reconnecting
          isUp = false
          reconnecting = options?.reconnecting ?? true
          if (wasUp) {
            yield* Deferred.succeed(closed, undefined)
            opened = yield* Deferred.make<void, Errors.RedisFailure>()
          } else if (reconnecting && !wasReconnecting) {
            opened = yield* Deferred.make<void, Errors.RedisFailure>()
          }
          if (!reconnecting) {
            // The reconnect is abandoned: `ready` calls waiting for it fail as ioredis' do on "end".
            yield* Deferred.fail(opened, transient("ready", "connection_closed", "unknown", "Connection is closed"))
          }
        }),
      up: Effect.gen(function*() {
        if (isUp) return
        isUp = true
        reconnecting = true
        yield* Deferred.succeed(opened, undefined)
        closed = yield* Deferred.make<void>()
      }),
      isUp: Effect.sync(() => isUp),
      peek: (key) => Effect.map(Clock.currentTimeMillis, (now) => live(key, now)?.value ?? null),
      pttl: (key) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const entry = live(key, now)
          return entry === undefined ? -2 : entry.expiresAt === undefined ? -1 : entry.expiresAt - now
        }),
      keys: Effect.map(Clock.currentTimeMillis, (now) => [...store.keys()].filter((k) => live(k, now) !== undefined).sort()),
      put: (key, value, ttl) =>
        Effect.map(Clock.currentTimeMillis, (now) =>
          write(key, value, ttl === undefined ? Option.none() : Option.some(Duration.decode(ttl)), now)),
      log: Effect.sync(() =>
        log.map((e): LogEntry => ({
          command: e.command,
          keys: e.keys,
          batched: e.batched,
          outcome: e.outcome,
          at: e.at,
          applied: e.appliedAt !== undefined,
          appliedAt: Option.fromNullable(e.appliedAt)
        }))
      ),
      clearLog: Effect.sync(() => void (log.length = 0)),
      inFlight: Effect.sync(() => inFlight)
    }
    return handle
  })

/**
 * Provides a scripted `RedisConnection.RedisConnection` and its {@link ScriptedConnection} control handle:
 *
 * ```ts
 * Effect.gen(function*() {
 *   const scripted = yield* ScriptedConnection.ScriptedConnection
 *   yield* scripted.push("get", ScriptedConnection.notSent)
 *   // ... the code under test, which uses RedisConnection.RedisConnection
 * }).pipe(Effect.provide(ScriptedConnection.layer()))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<RedisConnection.RedisConnection | ScriptedConnection> =>
  Layer.scopedContext(
    Effect.map(make(options), (handle) =>
      Context.make(ScriptedConnection, handle).pipe(Context.add(RedisConnection.RedisConnection, handle.connection)))
  )
