/**
 * The hybrid cache's invalidation path: Redis server-assisted client-side caching (`CLIENT TRACKING`) redirected to
 * a dedicated subscriber connection, and the rules that decide when L1 may answer.
 *
 * - The subscriber is its own ioredis client with `protocol: 2` (ioredis 6.0 speaks RESP3 by default and drops RESP3
 *   `invalidate` pushes), `SUBSCRIBE __redis__:invalidate`. On every `ready` it reads its `CLIENT ID` and subscribes;
 *   then every data socket is told `CLIENT TRACKING on REDIRECT <id>` (its id changed).
 * - Every data socket, on every `ready` (through `RedisConnection.watchSockets`, synchronously, before any other
 *   command), gets `CLIENT TRACKING off` + `on REDIRECT <subscriber id> [BCAST PREFIX ...]`: a reconnected socket has
 *   tracking off and a new id. L1 is trusted only once every ready socket answered OK for the current subscriber.
 * - Trust is lost, and L1 cleared, when the subscriber or a data socket closes, when a canary fails, and on a flush
 *   (an invalidation with a null key list: `FLUSHALL` / `FLUSHDB` of any database).
 * - The canary: every `interval`, `GET` + `SET` of a fresh key through the data connection; its invalidation must
 *   arrive within `timeout`. Redis sends a connection's invalidations in order, so when it arrives, every
 *   invalidation of a write processed before the canary's `SET` has been applied: L1 answers until
 *   `round start + interval + timeout` (the lease), so no value it serves misses a write older than that bound,
 *   whatever happened to the subscriber (stalled, silently dropped, starved). A canary that times out clears L1 and
 *   destroys the subscriber's socket (it reconnects, with a new id).
 * - Event-loop freshness: an invalidation that reached the process is applied only when its event loop polls the
 *   subscriber's socket; `fresh` tells whether the loop was seen polling within `maxLoopLagMillis` (a chain of
 *   `setImmediate` markers while L1 is read), `turn` waits for the next poll. A read that answers from L1 only when
 *   `fresh` holds, or after `turn`, misses no invalidation older than that: the window no longer grows with a GC
 *   pause, a busy stretch or the OS running other processes (measured: test/src/hybrid.test.ts).
 *
 * @internal
 */
import type { RedisConnection } from "@steadfast/redis"
import { RedisConfig } from "@steadfast/redis"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import type { RedisOptions } from "ioredis"
import { RedisConnection as Connection } from "@steadfast/redis"

export const channel = "__redis__:invalidate"

export interface TrackingOptions {
  readonly connection: RedisConnection.RedisConnection
  readonly keyPrefix: string
  readonly mode: "default" | "bcast"
  /** BCAST only: key prefixes (after `keyPrefix`); `[""]` means all of the cache's keys. */
  readonly prefixes: ReadonlyArray<string>
  readonly canaryInterval: Duration.Duration
  readonly canaryTimeout: Duration.Duration
  /** Where the subscriber connects instead of the data connection's server (tests put a proxy there). */
  readonly subscriberAddress?: { readonly host: string; readonly port: number } | undefined
  /** A key of the cache changed (without the prefix). */
  readonly invalidate: (key: string) => void
  /** Forget every L1 entry and refuse fills in flight (a flush: every value may have changed). */
  readonly clear: () => void
  /** Trust lost: no L1 entry may be a hit any more, fills in flight are refused (entries may stay as fail-safe values). */
  readonly demote: () => void
  /**
   * How long ago (ms, on the Effect clock) the event loop may last have been seen polling its sockets (the
   * subscriber's among them) for {@link Tracking.fresh} to hold (default {@link defaultLoopLagMillis}); `Infinity`:
   * always fresh.
   */
  readonly maxLoopLagMillis?: number | undefined
}

/** See {@link TrackingOptions.maxLoopLagMillis}. */
export const defaultLoopLagMillis = 2

export interface TrackingStatus {
  /** L1 may answer now. */
  readonly trusted: boolean
  readonly mode: "default" | "bcast"
  readonly subscriber: "ready" | "down"
  readonly subscriberId: number | undefined
  /** Each ready data socket: its `CLIENT ID` and whether its tracking is confirmed for the current subscriber. */
  readonly sockets: ReadonlyArray<{ readonly index: number; readonly clientId: number | undefined; readonly tracked: boolean }>
  readonly canaryRounds: number
  readonly canaryFailures: number
  /** Times trust was lost (and L1 cleared), by reason. */
  readonly losses: Readonly<Record<string, number>>
  readonly flushes: number
  readonly invalidationMessages: number
  /** The last canary's invalidation delay (send to arrival), ms. */
  readonly lastCanaryMillis: number | undefined
  /** The staleness bound: canary interval + timeout, ms. */
  readonly boundMillis: number
  /** See {@link TrackingOptions.maxLoopLagMillis}. */
  readonly maxLoopLagMillis: number
  /** Times `fresh` said no: the event loop had not been seen polling its sockets for longer than that. */
  readonly notFresh: number
}

export interface Tracking {
  /** Tracking is established for the current subscriber and the canary's lease runs: L1 may answer. */
  readonly trusted: (now: number) => boolean
  /**
   * The event loop is known to have polled its sockets (the subscriber's among them) within `maxLoopLagMillis`: an L1
   * answer now misses no invalidation that reached this process earlier than that. When it does not hold, answer
   * from L1 after {@link turn} (or from Redis).
   */
  readonly fresh: (now: number) => boolean
  /** Completes once the event loop has polled its sockets since it was started (one or two turns of the loop). */
  readonly turn: Effect.Effect<void>
  readonly status: () => TrackingStatus
}

interface Socket {
  readonly client: Redis
  tracked: boolean
  clientId: number | undefined
  generation: number
}

/** The subscriber's reconnect delay (ioredis' `retryStrategy`, attempts from 1): at once, then 50 ms doubling to 500 ms. */
export const subscriberRetry = (attempt: number) => (attempt <= 1 ? 0 : Math.min(50 * 2 ** Math.min(attempt - 2, 10), 500))

export const make = (options: TrackingOptions): Effect.Effect<Tracking, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { connection } = options
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const intervalMillis = Duration.toMillis(options.canaryInterval)
    const timeoutMillis = Duration.toMillis(options.canaryTimeout)
    const boundMillis = intervalMillis + timeoutMillis
    const prefix = options.keyPrefix
    const redisPrefixes = options.prefixes.some((p) => prefix + p === "") ? [] : options.prefixes.map((p) => prefix + p)
    const canaryBase = `${prefix}${options.mode === "bcast" ? options.prefixes[0] ?? "" : ""}__steadfast:canary:${
      Math.random().toString(36).slice(2)
    }:`

    const sockets = new Map<number, Socket>()
    let subscriberId: number | undefined
    let subscriberReady = false
    /** All ready sockets confirmed for `subscriberId`. */
    let established = false
    let leaseUntil = 0
    /** Bumped at every loss of trust: a canary round that spans one renews nothing. */
    let trustGeneration = 0
    let canaryRounds = 0
    let canaryFailures = 0
    let flushes = 0
    let invalidationMessages = 0
    let lastCanaryMillis: number | undefined
    const losses: Record<string, number> = {}
    let canary: { key: string; sentAt: number; done: Deferred.Deferred<void> } | undefined

    const log = (message: string, annotations: Record<string, unknown>, level: "warning" | "info" = "warning") =>
      runFork((level === "warning" ? Effect.logWarning(message) : Effect.logInfo(message)).pipe(
        Effect.annotateLogs({ operation: "hybrid_tracking", ...annotations })
      ))

    /**
     * A flush (`tracking` intact) clears L1; any other loss demotes it (no entry is a hit again, fail-safe may keep
     * them as stale values) and L1 stays off until tracking is re-established.
     */
    const lose = (reason: string, tracking: "lost" | "intact" = "lost") => {
      losses[reason] = (losses[reason] ?? 0) + 1
      trustGeneration++
      if (tracking === "lost") {
        established = false
        options.demote()
      } else options.clear()
    }

    const check = () => {
      if (established || subscriberId === undefined || !subscriberReady || sockets.size === 0) return
      for (const socket of sockets.values()) if (!socket.tracked) return
      established = true
      leaseUntil = now() + boundMillis
    }

    const track = (index: number, socket: Socket) => {
      const id = subscriberId
      if (id === undefined) return
      const generation = ++socket.generation
      socket.tracked = false
      const on = options.mode === "bcast"
        ? ["TRACKING", "on", "REDIRECT", String(id), "BCAST", ...redisPrefixes.flatMap((p) => ["PREFIX", p])]
        : ["TRACKING", "on", "REDIRECT", String(id)]
      const pipeline = socket.client.pipeline()
      pipeline.call("CLIENT", "TRACKING", "off")
      pipeline.call("CLIENT", ...on)
      pipeline.call("CLIENT", "ID")
      pipeline.exec().then((results) => {
        const failed = results?.find(([error]) => error !== null)
        if (failed !== undefined) throw failed[0]
        if (socket.generation !== generation || sockets.get(index) !== socket || subscriberId !== id) return
        socket.tracked = true
        socket.clientId = Number(results![2]![1])
        check()
      }).catch((error: unknown) => {
        if (socket.generation !== generation) return
        log("CLIENT TRACKING failed on a data socket: L1 stays off until it succeeds", {
          socket: index,
          error_message: String((error as Error)?.message ?? error)
        })
      })
    }

    // ---- Data sockets ------------------------------------------------------------------------------------------
    const watch = connection.watchSockets
    if (watch === undefined) {
      return yield* Effect.dieMessage("HybridCache needs a RedisConnection with watchSockets (RedisConnection.layer)")
    }
    yield* watch({
      ready: (index, client) => {
        const socket: Socket = { client, tracked: false, clientId: undefined, generation: 0 }
        sockets.set(index, socket)
        // A new socket has tracking off: nothing it reads may fill L1 until it is confirmed.
        if (established) {
          established = false
          trustGeneration++
        }
        track(index, socket)
      },
      closed: (index) => {
        const socket = sockets.get(index)
        if (socket === undefined) return
        socket.generation++
        sockets.delete(index)
        // Its tracked keys are gone with it: what L1 holds may no longer be invalidated.
        lose("data_socket_closed")
      }
    })

    // ---- The subscriber ----------------------------------------------------------------------------------------
    const url = yield* Either.match(RedisConfig.parseUrl(connection.config.url), {
      onLeft: (problem) => Effect.dieMessage(`invalid Redis URL: ${problem}`),
      onRight: Effect.succeed
    })
    const base = Connection.clientOptions(connection.config, url)
    const subscriberOptions: RedisOptions = {
      ...base,
      ...(options.subscriberAddress === undefined ? {} : { host: options.subscriberAddress.host, port: options.subscriberAddress.port }),
      protocol: 2,
      // A plain ioredis client: its commands (CLIENT ID, SUBSCRIBE) get ioredis' socket timeout (the data sockets'
      // silence watch is the connection's own). Once subscribed it writes nothing; the canary checks it is alive.
      socketTimeout: Connection.socketTimeoutMillis(connection.config),
      connectionName: "steadfast-invalidation",
      autoResubscribe: false,
      enableAutoPipelining: false,
      enableOfflineQueue: true,
      retryStrategy: subscriberRetry
    }
    let subscriberGeneration = 0
    let closing = false
    const subscriber = yield* Effect.acquireRelease(
      Effect.sync(() => new Redis(subscriberOptions as RedisOptions & { replyMapping: "legacy" })),
      (client) =>
        Effect.sync(() => {
          closing = true
          client.disconnect(false)
        })
    )
    subscriber.on("error", () => {}) // reported through close / ready below
    subscriber.on("ready", () => {
      const generation = ++subscriberGeneration
      subscriber.client("ID").then(async (id) => {
        await subscriber.subscribe(channel)
        if (generation !== subscriberGeneration) return
        subscriberId = Number(id)
        subscriberReady = true
        for (const [index, socket] of sockets) track(index, socket)
        log("invalidation subscriber ready", { subscriber_id: subscriberId }, "info")
      }).catch((error: unknown) => {
        if (generation !== subscriberGeneration || closing) return
        log("invalidation subscriber could not subscribe; reconnecting", { error_message: String((error as Error)?.message ?? error) })
        subscriber.stream?.destroy()
      })
    })
    subscriber.on("close", () => {
      subscriberGeneration++
      const wasReady = subscriberReady
      subscriberReady = false
      subscriberId = undefined
      if (closing) return
      lose("subscriber_closed")
      if (wasReady) log("invalidation subscriber dropped: L1 cleared until tracking is re-established", {})
    })
    subscriber.on("messageBuffer", (name: Buffer, message: unknown) => {
      if (name.toString() !== channel) return
      invalidationMessages++
      if (message === null || message === undefined) {
        // FLUSHALL / FLUSHDB (of any database): everything may have changed.
        flushes++
        lose("flush", "intact")
        return
      }
      const keys = Array.isArray(message) ? message : [message]
      for (const raw of keys) {
        const key = String(raw)
        if (canary !== undefined && key === canary.key) {
          lastCanaryMillis = now() - canary.sentAt
          Deferred.unsafeDone(canary.done, Exit.void)
          continue
        }
        if (key.startsWith(prefix)) options.invalidate(prefix === "" ? key : key.slice(prefix.length))
      }
    })
    subscriber.connect().catch(() => {})

    // ---- The canary --------------------------------------------------------------------------------------------
    const canaryTtl = Math.max(1000, 3 * boundMillis)
    const round = Effect.gen(function*() {
      if (!established) {
        // Pending sockets whose tracking failed (not because of a reconnect): try again.
        if (subscriberReady) for (const [index, socket] of sockets) if (!socket.tracked) track(index, socket)
        check()
        return
      }
      const generation = trustGeneration
      const startedAt = now()
      const key = canaryBase + canaryRounds++
      const done = yield* Deferred.make<void>()
      canary = { key, sentAt: startedAt, done }
      const sent = yield* Effect.either(connection.execute("hybrid_canary", (c) =>
        Promise.all([c.get(key), c.set(key, "1", "PX", canaryTtl)])))
      if (Either.isLeft(sent)) {
        // Redis did not take it: no renewal (the lease runs out on its own); the data socket's own events say more.
        canary = undefined
        return
      }
      const left = Math.max(1, startedAt + timeoutMillis - now())
      const arrived = yield* Deferred.await(done).pipe(Effect.timeout(Duration.millis(left)), Effect.option)
      canary = undefined
      if (arrived._tag === "Some") {
        if (generation === trustGeneration && established) leaseUntil = startedAt + boundMillis
        return
      }
      if (generation !== trustGeneration) return
      canaryFailures++
      lose("canary_timeout")
      log("canary invalidation did not arrive in time: L1 cleared, invalidation subscriber reconnecting", {
        timeout_ms: timeoutMillis
      })
      subscriber.stream?.destroy()
    })
    yield* round.pipe(
      Effect.repeat(Schedule.fixed(options.canaryInterval)),
      Effect.interruptible,
      Effect.forkScoped
    )

    // ---- Event-loop freshness ----------------------------------------------------------------------------------
    // An invalidation that reached the subscriber's socket is applied when the event loop next polls its sockets. A
    // process that stopped polling for a while (a GC pause, a long synchronous stretch, the OS running another
    // process) and answers from L1 before its next poll answers with what Redis already invalidated: that pause is
    // its staleness window, whatever the canary says. `fresh` tells whether the loop is known to have polled recently.
    //
    // The proof is a chain of `setImmediate` markers, kept running while L1 is read (it stops after a loop turn
    // without a read: it must not spin an idle loop). A marker queued from a check phase runs in the next one, and the
    // poll phase in between began after it was queued: when it runs, every invalidation that had reached the socket
    // when it was queued has been applied, so `polledAfter` = that time. `fresh(now)` holds while
    // `now - polledAfter <= maxLoopLag`. When it does not (the chain was stopped, or the loop has not turned for
    // longer), a read waits for `turn` (the check phase after the next poll phase: one or two turns of the loop, no
    // round trip) and is answered then.
    const maxLoopLag = options.maxLoopLagMillis ?? defaultLoopLagMillis
    let polledAfter = Number.NEGATIVE_INFINITY
    let running = false
    /** When the pending marker was queued from a check phase (undefined: queued elsewhere, it proves nothing). */
    let markerQueuedAt: number | undefined
    let readSinceMarker = false
    let notFresh = 0
    let immediate: ReturnType<typeof setImmediate> | undefined
    let ended = false
    const marker = () => {
      immediate = undefined
      if (markerQueuedAt !== undefined) polledAfter = markerQueuedAt
      if (!readSinceMarker || ended) {
        running = false
        markerQueuedAt = undefined
        return
      }
      readSinceMarker = false
      markerQueuedAt = now()
      immediate = setImmediate(marker)
    }
    const fresh = (at: number): boolean => {
      if (maxLoopLag === Number.POSITIVE_INFINITY) return true
      readSinceMarker = true
      if (!running && !ended) {
        running = true
        markerQueuedAt = undefined
        immediate = setImmediate(marker)
      }
      if (at - polledAfter <= maxLoopLag) return true
      notFresh++
      return false
    }
    /**
     * Two immediates: the second is queued from a check phase, so a whole poll phase runs before it (which began
     * after the wait did). One or two turns of the loop.
     */
    const turn: Effect.Effect<void> = Effect.async<void>((resume) => {
      let handle = setImmediate(() => {
        handle = setImmediate(() => resume(Effect.void))
      })
      return Effect.sync(() => clearImmediate(handle))
    })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        ended = true
        if (immediate !== undefined) clearImmediate(immediate)
      })
    )

    return {
      trusted: (at) => established && at < leaseUntil,
      fresh,
      turn,
      status: () => ({
        trusted: established && now() < leaseUntil,
        mode: options.mode,
        subscriber: subscriberReady ? "ready" : "down",
        subscriberId,
        sockets: [...sockets].map(([index, s]) => ({ index, clientId: s.clientId, tracked: s.tracked })),
        canaryRounds,
        canaryFailures,
        losses: { ...losses },
        flushes,
        invalidationMessages,
        lastCanaryMillis,
        boundMillis,
        maxLoopLagMillis: maxLoopLag,
        notFresh
      })
    }
  })
