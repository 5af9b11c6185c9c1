/**
 * A real Redis Sentinel set (a primary, 2 replicas, 3 sentinels) as a scoped resource, for failover tests.
 *
 * `make` spawns the primary, its two replicas and three sentinels monitoring it (quorum 2, a small
 * `down-after-milliseconds` and `failover-timeout`) and waits until the replicas are in sync and every sentinel
 * knows both replicas and the two other sentinels. Helpers then fail over (`SENTINEL FAILOVER`), kill or stall
 * the primary, and bring the old primary back, each waiting for what it promises. Closing the scope resumes
 * stalled processes, kills every process and removes the temporary directories, also on failure and
 * interruption.
 *
 * What Sentinel does not do, and these helpers therefore show: after a failover the old primary stays a
 * primary, taking writes from clients still connected to it, until a sentinel reconfigures it as a replica
 * (once it has reported itself as a primary for about 8 seconds, or when it comes back after a kill).
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { live } from "./internal/live.js"
import * as Poll from "./internal/poll.js"
import * as RedisServer from "./RedisServer.js"

/**
 * A failure to start the set, or a topology change that did not happen in time (the message says what was
 * still missing).
 *
 * @since 0.2.0
 * @category errors
 */
export class RedisSentinelError extends Data.TaggedError("RedisSentinelError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** The monitored master's name. Default: `"steadfast"`. */
  readonly masterName?: string
  /** `sentinel down-after-milliseconds`: how long the primary may be unreachable. Default: 1 second. */
  readonly downAfter?: Duration.DurationInput
  /**
   * `sentinel failover-timeout`. Also: no automatic failover starts within twice this time of the previous one.
   * Default: 2 seconds.
   */
  readonly failoverTimeout?: Duration.DurationInput
  /** Extra `redis.conf` lines for the three data nodes (they come last). */
  readonly config?: ReadonlyArray<string>
  /** Bound of `make` and of each helper's wait. Default: 30 seconds. */
  readonly timeout?: Duration.DurationInput
}

/**
 * @since 0.2.0
 * @category models
 */
export interface Address {
  readonly host: string
  readonly port: number
}

/**
 * A change of primary: from which node to which, and how long it took.
 *
 * @since 0.2.0
 * @category models
 */
export interface Switch {
  readonly from: Address
  readonly to: Address
  /** From the command (or the kill) until every sentinel names `to` and `to` answers `ROLE` as a master. */
  readonly duration: Duration.Duration
}

/**
 * A running Sentinel set.
 *
 * @since 0.2.0
 * @category models
 */
export interface RedisSentinel {
  /** The monitored master's name: pass it as ioredis' `name`. */
  readonly masterName: string
  /** The sentinels' addresses: pass them as ioredis' `sentinels`. */
  readonly sentinels: ReadonlyArray<Address>
  /** The data nodes, in creation order (the first is the first primary). */
  readonly servers: ReadonlyArray<RedisServer.RedisServer>
  /** The sentinel processes. */
  readonly sentinelServers: ReadonlyArray<RedisServer.RedisServer>
  /** The current primary, as a running sentinel reports it (`SENTINEL GET-MASTER-ADDR-BY-NAME`). */
  readonly primary: Effect.Effect<Address, RedisSentinelError>
  /**
   * `SENTINEL FAILOVER` (retried while the sentinel answers `NOGOODSLAVE` / `INPROG`), then waits until every
   * running sentinel names a new primary and it answers `ROLE` as a master. The old primary is still a primary
   * when this returns (see the module's note); {@link RedisSentinel.restartOld} waits for its demotion.
   */
  readonly failover: Effect.Effect<Switch, RedisSentinelError>
  /** SIGKILLs the primary and waits as {@link RedisSentinel.failover} does (after `downAfter` and the election). */
  readonly killPrimary: Effect.Effect<Switch, RedisSentinelError>
  /**
   * SIGSTOPs the primary and returns at once; the sentinels fail over after `downAfter` (wait with
   * {@link RedisSentinel.awaitPrimaryChange}).
   */
  readonly stallPrimary: Effect.Effect<Address, RedisSentinelError>
  /** SIGCONTs every stalled node. Returns at once. */
  readonly resume: Effect.Effect<void>
  /** Waits until every running sentinel names a primary other than `from`, and it answers `ROLE` as a master. */
  readonly awaitPrimaryChange: (from: Address) => Effect.Effect<Switch, RedisSentinelError>
  /**
   * The demoted primary returning: starts it again if it was killed (with its original configuration, as a
   * primary) or resumes it if stalled, and waits until a sentinel has made it a replica of the current primary,
   * connected and in sync. Fails when no primary has been demoted.
   */
  readonly restartOld: Effect.Effect<{ readonly node: Address; readonly duration: Duration.Duration }, RedisSentinelError>
  /**
   * Waits until every running data node other than the primary is its replica, connected and in sync, and every
   * running sentinel sees the primary as healthy.
   */
  readonly awaitReplicas: Effect.Effect<void, RedisSentinelError>
}

const HOST = "127.0.0.1"
const fail = (message: string, cause?: unknown) =>
  new RedisSentinelError(cause === undefined ? { message } : { message, cause })

/** A flat `[key, value, ...]` reply (SENTINEL MASTER) as a map. */
const pairs = (reply: RedisServer.RedisReply): Map<string, string> => {
  const map = new Map<string, string>()
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) map.set(String(reply[i]), String(reply[i + 1]))
  }
  return map
}

const same = (a: Address, b: Address) => a.host === b.host && a.port === b.port

/**
 * Starts a primary, 2 replicas and 3 sentinels as a scoped resource, and waits until the sentinels are ready to
 * fail over.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<RedisSentinel, RedisSentinelError, Scope.Scope> =>
  live(Effect.gen(function*() {
    const masterName = options.masterName ?? "steadfast"
    const timeout = Duration.decode(options.timeout ?? Duration.seconds(30))
    const downAfter = Duration.toMillis(options.downAfter ?? Duration.seconds(1))
    const failoverTimeout = Duration.toMillis(options.failoverTimeout ?? Duration.seconds(2))
    const startError = (cause: RedisServer.RedisServerError) => fail(`cannot start: ${cause.message}`, cause)
    const dataConfig = ["repl-diskless-sync yes", "repl-diskless-sync-delay 0", ...(options.config ?? [])]

    const first = yield* Effect.mapError(
      RedisServer.make({ commandTimeout: Duration.seconds(2), config: dataConfig }),
      startError
    )
    const replicas = yield* Effect.all(
      [1, 2].map(() =>
        RedisServer.make({
          commandTimeout: Duration.seconds(2),
          config: [`replicaof ${HOST} ${first.port}`, ...dataConfig]
        })
      ),
      { concurrency: "unbounded" }
    ).pipe(Effect.mapError(startError))
    const servers = [first, ...replicas]
    const sentinelServers = yield* Effect.all(
      [0, 1, 2].map(() =>
        RedisServer.make({
          sentinel: true,
          commandTimeout: Duration.seconds(2),
          config: [
            `sentinel monitor ${masterName} ${HOST} ${first.port} 2`,
            `sentinel down-after-milliseconds ${masterName} ${downAfter}`,
            `sentinel failover-timeout ${masterName} ${failoverTimeout}`
          ]
        })
      ),
      { concurrency: "unbounded" }
    ).pipe(Effect.mapError(startError))

    const stalled = new Set<RedisServer.RedisServer>()
    const pids = new Map<RedisServer.RedisServer, number | undefined>()
    // Runs before the servers' own finalizers: a stopped process gets SIGCONT before it is killed.
    yield* Effect.addFinalizer(() => Effect.sync(() => stalled.forEach((s) => Poll.signal(pids.get(s), "SIGCONT"))))
    const refreshPids = Effect.forEach(servers, (s) => Effect.map(s.pid, (pid) => pids.set(s, pid)), { discard: true })
    const isRunning = (s: RedisServer.RedisServer) => pids.get(s) !== undefined && !stalled.has(s)
    const serverAt = (address: Address) => servers.find((s) => s.port === address.port)

    const now = Effect.clockWith((clock) => clock.currentTimeMillis)
    const until = <A>(what: string, check: Effect.Effect<Poll.Check<A>, unknown>) =>
      Poll.until(check, timeout, (why) => fail(`${what}: not done after ${Duration.format(timeout)}: ${why}`))

    const askSentinel = (sentinel: RedisServer.RedisServer) =>
      Effect.flatMap(
        sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName),
        (reply) =>
          Array.isArray(reply) && reply.length === 2
            ? Effect.succeed<Address>({ host: String(reply[0]), port: Number(reply[1]) })
            : Effect.fail(fail(`sentinel ${sentinel.port}: GET-MASTER-ADDR-BY-NAME ${JSON.stringify(reply)}`))
      )

    const primary = live(Effect.gen(function*() {
      let last: unknown
      for (const sentinel of sentinelServers) {
        const address = yield* Effect.either(askSentinel(sentinel))
        if (address._tag === "Right") return address.right
        last = address.left
      }
      return yield* Effect.fail(fail(`no sentinel names the primary: ${Poll.describe(last)}`, last))
    }))

    const role = (server: RedisServer.RedisServer) =>
      Effect.map(server.command("ROLE"), (reply) => (Array.isArray(reply) ? String(reply[0]) : JSON.stringify(reply)))

    /** Every sentinel names the same primary, not `from`, and it answers ROLE as a master. */
    const checkPrimary = (from: Address | undefined) =>
      Effect.gen(function*() {
        const named = yield* Effect.all(sentinelServers.map(askSentinel), { concurrency: "unbounded" })
        const address = named[0]!
        if (named.some((a) => !same(a, address))) {
          return Poll.notYet(`sentinels disagree: ${named.map((a) => a.port).join(", ")}`)
        }
        if (from !== undefined && same(address, from)) return Poll.notYet(`sentinels still name ${from.port}`)
        const server = serverAt(address)
        if (server === undefined) return Poll.notYet(`sentinels name an unknown node ${address.port}`)
        const r = yield* role(server)
        return r === "master" ? Poll.done(address) : Poll.notYet(`${address.port} answers ROLE ${r}`)
      })

    /** `server` is a replica of `of`, connected and in sync. */
    const checkReplica = (server: RedisServer.RedisServer, of: Address) =>
      Effect.map(server.command("INFO", "replication"), Poll.parseInfo).pipe(Effect.map((info) => {
        if (info.get("role") !== "slave") return Poll.notYet(`${server.port} is a ${info.get("role")}`)
        if (Number(info.get("master_port")) !== of.port) {
          return Poll.notYet(`${server.port} replicates ${info.get("master_port")}, not ${of.port}`)
        }
        if (info.get("master_link_status") !== "up" || info.get("master_sync_in_progress") !== "0") {
          return Poll.notYet(`${server.port} is not in sync with ${of.port}`)
        }
        return Poll.done(undefined)
      }))

    const checkReplicas = Effect.gen(function*() {
      yield* refreshPids
      const current = yield* checkPrimary(undefined)
      if (!current.done) return current
      const p = current.value
      for (const server of servers) {
        if (server.port === p.port || !isRunning(server)) continue
        const ok = yield* checkReplica(server, p)
        if (!ok.done) return ok
      }
      const running = servers.filter((s) => s.port !== p.port && isRunning(s)).map((s) => s.port)
      for (const sentinel of sentinelServers) {
        const master = pairs(yield* sentinel.command("SENTINEL", "MASTER", masterName))
        if (master.get("flags") !== "master") return Poll.notYet(`sentinel ${sentinel.port}: flags ${master.get("flags")}`)
        if (master.get("num-other-sentinels") !== "2") {
          return Poll.notYet(`sentinel ${sentinel.port} knows ${master.get("num-other-sentinels")} other sentinels`)
        }
        const known = yield* sentinel.command("SENTINEL", "REPLICAS", masterName)
        const healthy = (Array.isArray(known) ? known : []).map(pairs)
          .filter((r) => r.get("flags") === "slave" && r.get("master-link-status") === "ok")
          .map((r) => Number(r.get("port")))
        const missing = running.filter((port) => !healthy.includes(port))
        if (missing.length > 0) return Poll.notYet(`sentinel ${sentinel.port} does not see replicas ${missing.join(", ")} healthy`)
      }
      return Poll.done(undefined)
    })

    const awaitReplicas = live(until("awaitReplicas", checkReplicas))
    yield* until("make", checkReplicas)

    let old: RedisServer.RedisServer | undefined

    const awaitChange = (from: Address, start: number) =>
      Effect.gen(function*() {
        const to = yield* until(`failover from ${from.port}`, checkPrimary(from))
        return { from, to, duration: Duration.millis((yield* now) - start) } satisfies Switch
      })

    const awaitPrimaryChange = (from: Address) => live(Effect.flatMap(now, (start) => awaitChange(from, start)))

    const failover = live(Effect.gen(function*() {
      const from = yield* primary
      const start = yield* now
      yield* until(
        "SENTINEL FAILOVER",
        Effect.gen(function*() {
          const reply = yield* sentinelServers[0]!.command("SENTINEL", "FAILOVER", masterName)
          return reply === "OK" ? Poll.done(undefined) : Poll.notYet(`SENTINEL FAILOVER: ${JSON.stringify(reply)}`)
        })
      )
      old = serverAt(from)
      return yield* awaitChange(from, start)
    }))

    const killPrimary = live(Effect.gen(function*() {
      const from = yield* primary
      const server = serverAt(from)
      if (server === undefined) return yield* Effect.fail(fail(`the primary ${from.port} is not one of ours`))
      const start = yield* now
      stalled.delete(server)
      yield* server.kill
      old = server
      return yield* awaitChange(from, start)
    }))

    const stallPrimary = live(Effect.gen(function*() {
      const from = yield* primary
      const server = serverAt(from)
      const pid = server === undefined ? undefined : yield* server.pid
      if (server === undefined || pid === undefined) return yield* Effect.fail(fail(`the primary ${from.port} is not running`))
      pids.set(server, pid)
      stalled.add(server)
      Poll.signal(pid, "SIGSTOP")
      old = server
      return from
    }))

    const resume = Effect.sync(() => {
      stalled.forEach((s) => Poll.signal(pids.get(s), "SIGCONT"))
      stalled.clear()
    })

    const restartOld = live(Effect.gen(function*() {
      const server = old
      if (server === undefined) return yield* Effect.fail(fail("no primary has been demoted"))
      const start = yield* now
      if (stalled.has(server)) {
        Poll.signal(pids.get(server), "SIGCONT")
        stalled.delete(server)
      } else {
        yield* Effect.mapError(server.start, (cause) => fail(`restart of ${server.port}: ${cause.message}`, cause))
      }
      yield* until(
        `${server.port} becoming a replica`,
        Effect.gen(function*() {
          const current = yield* checkPrimary(undefined)
          if (!current.done) return current
          if (current.value.port === server.port) return Poll.notYet(`${server.port} is the primary again`)
          return yield* checkReplica(server, current.value)
        })
      )
      old = undefined
      return { node: { host: HOST, port: server.port }, duration: Duration.millis((yield* now) - start) }
    }))

    return {
      masterName,
      sentinels: sentinelServers.map((s) => ({ host: HOST, port: s.port })),
      servers,
      sentinelServers,
      primary,
      failover,
      killPrimary,
      stallPrimary,
      resume,
      awaitPrimaryChange,
      restartOld,
      awaitReplicas
    } satisfies RedisSentinel
  }))
