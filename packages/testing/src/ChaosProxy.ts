/**
 * A TCP proxy that injects network faults between a client and a server, switchable at run time.
 *
 * Point your client at the proxy (`proxy.url()`), then `setFault` to add latency, stall traffic, reset or
 * close connections, refuse new ones, or reset connections after some bytes. The proxy works at the TCP
 * level, so it carries TLS too.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/**
 * Failure to listen.
 *
 * @since 0.1.0
 * @category errors
 */
export class ChaosProxyError extends Data.TaggedError("ChaosProxyError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * What the proxy does to the traffic.
 *
 * - `PassThrough`: forwards both ways.
 * - `Latency`: delays every chunk by `upstream` (client to server) / `downstream` (server to client), in order.
 * - `Stall`: holds every byte in both directions, sockets stay open; held bytes are flushed, in order, when the
 *   fault changes.
 * - `Reset`: resets (TCP RST) every connection, current and new: the client sees `ECONNRESET`.
 * - `Close`: ends (TCP FIN) every connection, current and new: the client sees `end` then `close`, no error.
 * - `Refuse`: stops listening (new connections get `ECONNREFUSED`, current ones keep working); listening
 *   resumes on the same port when the fault changes.
 * - `ResetAfter`: resets each connection once `bytes` bytes (both directions, counted from when the fault is
 *   set) went through it.
 *
 * @since 0.1.0
 * @category models
 */
export type Fault = Data.TaggedEnum<{
  PassThrough: {}
  Latency: { readonly upstream: Duration.DurationInput; readonly downstream: Duration.DurationInput }
  Stall: {}
  Reset: {}
  Close: {}
  Refuse: {}
  ResetAfter: { readonly bytes: number }
}>

const Fault = Data.taggedEnum<Fault>()

/**
 * @since 0.1.0
 * @category constructors
 */
export const PassThrough = Fault.PassThrough
/**
 * @since 0.1.0
 * @category constructors
 */
export const Latency = Fault.Latency
/**
 * @since 0.1.0
 * @category constructors
 */
export const Stall = Fault.Stall
/**
 * @since 0.1.0
 * @category constructors
 */
export const Reset = Fault.Reset
/**
 * @since 0.1.0
 * @category constructors
 */
export const Close = Fault.Close
/**
 * @since 0.1.0
 * @category constructors
 */
export const Refuse = Fault.Refuse
/**
 * @since 0.1.0
 * @category constructors
 */
export const ResetAfter = Fault.ResetAfter

/**
 * Counters since the proxy started. `resets` / `closes` count connections reset / closed by the proxy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly accepted: number
  readonly resets: number
  readonly closes: number
  /** Bytes forwarded client to server. */
  readonly bytesUp: number
  /** Bytes forwarded server to client. */
  readonly bytesDown: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly upstream: { readonly host: string; readonly port: number }
  /** A fixed port. Default: a free port. */
  readonly port?: number
}

/**
 * A running proxy.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChaosProxy {
  /** Always `"127.0.0.1"`. */
  readonly host: string
  readonly port: number
  /** `redis://[:password@]127.0.0.1:port`. */
  readonly url: (password?: string) => string
  readonly fault: Effect.Effect<Fault>
  /** Applies a fault to current and future connections; returns once it is in effect. */
  readonly setFault: (fault: Fault) => Effect.Effect<void>
  /** Resets (RST) every current connection once; the fault is unchanged. */
  readonly resetConnections: Effect.Effect<void>
  /** Ends (FIN) every current connection once; the fault is unchanged. */
  readonly closeConnections: Effect.Effect<void>
  /** Open client connections. */
  readonly connectionCount: Effect.Effect<number>
  readonly stats: Effect.Effect<Stats>
}

const HOST = "127.0.0.1"

interface Chunk {
  readonly bytes: Buffer
  readonly dueAt: number
}

/** One direction of a connection: chunks wait here until due (latency) and not stalled. */
interface Pipe {
  readonly from: Net.Socket
  readonly to: Net.Socket
  readonly direction: "up" | "down"
  readonly queue: Array<Chunk>
  timer: ReturnType<typeof setTimeout> | undefined
  ended: boolean
}

interface Connection {
  readonly client: Net.Socket
  readonly upstream: Net.Socket
  readonly up: Pipe
  readonly down: Pipe
  /** Bytes forwarded since the current `ResetAfter` was set. */
  bytes: number
}

/** A real RST (`SO_LINGER 0`), falling back to a plain destroy while still connecting. */
const rst = (socket: Net.Socket): void => {
  if (socket.destroyed) return
  if (socket.connecting) socket.destroy()
  else socket.resetAndDestroy()
}

/** FIN, then release the socket once the FIN is written. */
const fin = (socket: Net.Socket): void => {
  if (socket.destroyed) return
  socket.end(() => socket.destroy())
}

/**
 * Starts the proxy as a scoped resource. Closing the scope destroys every socket, closes the listener and
 * clears every timer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<ChaosProxy, ChaosProxyError, Scope.Scope> =>
  Effect.gen(function*() {
    let fault: Fault = PassThrough()
    let server: Net.Server | undefined
    let port = options.port ?? 0
    let closed = false
    const connections = new Set<Connection>()
    const loose = new Set<Net.Socket>() // accepted and being reset / closed, not yet gone
    const stats = { accepted: 0, resets: 0, closes: 0, bytesUp: 0, bytesDown: 0 }

    const clearTimers = (conn: Connection) => {
      for (const pipe of [conn.up, conn.down]) {
        if (pipe.timer !== undefined) clearTimeout(pipe.timer)
        pipe.timer = undefined
      }
    }

    const dropConnection = (conn: Connection) => {
      clearTimers(conn)
      connections.delete(conn)
    }

    const resetConnection = (conn: Connection) => {
      stats.resets++
      dropConnection(conn)
      rst(conn.client)
      rst(conn.upstream)
    }

    const closeConnection = (conn: Connection) => {
      stats.closes++
      dropConnection(conn)
      fin(conn.client)
      fin(conn.upstream)
    }

    /** Delivers every due chunk of a pipe, unless stalled; schedules itself for the next one. */
    const pump = (conn: Connection, pipe: Pipe): void => {
      if (fault._tag === "Stall" || !connections.has(conn)) return
      const now = Date.now()
      while (pipe.queue.length > 0) {
        const chunk = pipe.queue[0]!
        if (chunk.dueAt > now) {
          if (pipe.timer === undefined) {
            pipe.timer = setTimeout(() => {
              pipe.timer = undefined
              pump(conn, pipe)
            }, chunk.dueAt - now)
          }
          return
        }
        pipe.queue.shift()
        // with ResetAfter, forward up to the budget left, then reset
        const budget = fault._tag === "ResetAfter" ? Math.max(0, fault.bytes - conn.bytes) : Infinity
        const bytes = chunk.bytes.length < budget ? chunk.bytes : chunk.bytes.subarray(0, budget)
        conn.bytes += bytes.length
        if (pipe.direction === "up") stats.bytesUp += bytes.length
        else stats.bytesDown += bytes.length
        if (bytes.length > 0) pipe.to.write(bytes)
        if (bytes.length >= budget) return resetConnection(conn)
      }
      if (pipe.ended && !pipe.to.writableEnded) pipe.to.end()
    }

    const pumpAll = () => {
      for (const conn of connections) {
        pump(conn, conn.up)
        pump(conn, conn.down)
      }
    }

    const onConnection = (client: Net.Socket): void => {
      stats.accepted++
      if (closed || fault._tag === "Reset" || fault._tag === "Close") {
        loose.add(client)
        client.once("close", () => loose.delete(client))
        client.on("error", () => {})
        if (fault._tag === "Close") {
          stats.closes++
          return fin(client)
        }
        stats.resets++
        return rst(client)
      }
      const upstream = Net.connect({ host: options.upstream.host, port: options.upstream.port, allowHalfOpen: true })
      const pipe = (from: Net.Socket, to: Net.Socket, direction: "up" | "down"): Pipe => ({
        from,
        to,
        direction,
        queue: [],
        timer: undefined,
        ended: false
      })
      const conn: Connection = {
        client,
        upstream,
        up: pipe(client, upstream, "up"),
        down: pipe(upstream, client, "down"),
        bytes: 0
      }
      connections.add(conn)
      for (const p of [conn.up, conn.down]) {
        p.from.on("data", (bytes: Buffer) => {
          const delay = fault._tag === "Latency"
            ? Duration.toMillis(p.direction === "up" ? fault.upstream : fault.downstream)
            : 0
          // never earlier than the chunk before: order is preserved when the latency changes
          const last = p.queue[p.queue.length - 1]
          p.queue.push({ bytes, dueAt: Math.max(Date.now() + delay, last?.dueAt ?? 0) })
          pump(conn, p)
        })
        p.from.on("end", () => {
          p.ended = true
          pump(conn, p)
        })
        p.from.on("error", () => {})
        p.from.on("close", (hadError) => {
          if (!connections.has(conn)) return // already reset / closed by the proxy
          if (hadError || !p.ended) {
            // one side broke: break the other the same way
            dropConnection(conn)
            if (hadError) rst(p.to)
            else p.to.destroy()
          } else if (p.to.destroyed) {
            dropConnection(conn) // both sides done
          }
        })
      }
    }

    const listen: Effect.Effect<void, ChaosProxyError> = Effect.async((resume) => {
      const next = Net.createServer({ allowHalfOpen: true }, onConnection)
      let listening = false
      // kept after listening: a later server error (e.g. EMFILE on accept) must not crash the test process
      next.on("error", (cause) => {
        if (listening) return
        resume(Effect.fail(new ChaosProxyError({ message: `cannot listen on ${HOST}:${port}: ${cause.message}`, cause })))
      })
      next.listen(port, HOST, () => {
        listening = true
        server = next
        port = (next.address() as Net.AddressInfo).port
        resume(Effect.void)
      })
    })

    const unlisten = () => {
      server?.close()
      server = undefined
    }

    yield* Effect.acquireRelease(listen, () =>
      Effect.sync(() => {
        closed = true
        unlisten()
        for (const conn of connections) {
          dropConnection(conn)
          conn.client.destroy()
          conn.upstream.destroy()
        }
        for (const socket of loose) socket.destroy()
        loose.clear()
      }))

    const setFault = (next: Fault): Effect.Effect<void> =>
      Effect.suspend(() => {
        fault = next
        switch (next._tag) {
          case "Reset":
            connections.forEach(resetConnection)
            break
          case "Close":
            connections.forEach(closeConnection)
            break
          case "ResetAfter":
            connections.forEach((conn) => (conn.bytes = 0))
            break
          case "Refuse":
            unlisten()
            return Effect.void
        }
        pumpAll()
        // Listening again on the same port only fails if another process grabbed it: a defect of the test.
        return server === undefined && !closed ? Effect.orDie(listen) : Effect.void
      })

    return {
      host: HOST,
      port,
      url: (password) => `redis://${password === undefined ? "" : `:${encodeURIComponent(password)}@`}${HOST}:${port}`,
      fault: Effect.sync(() => fault),
      setFault,
      resetConnections: Effect.sync(() => connections.forEach(resetConnection)),
      closeConnections: Effect.sync(() => connections.forEach(closeConnection)),
      connectionCount: Effect.sync(() => connections.size),
      stats: Effect.sync(() => ({ ...stats }))
    }
  })
