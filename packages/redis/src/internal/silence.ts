/**
 * Silent sockets: a socket that has commands waiting for their replies and has received nothing for `limit` ms is
 * destroyed (ioredis then reconnects it), as ioredis' own `socketTimeout` option does, with the same error.
 *
 * Why not that option: ioredis arms a timer and a one-off `data` listener whenever it writes a command and none is
 * armed, so a single caller pays for both on every command: measured at 1.0-3.7 µs of CPU per GET on a local server
 * (`node benchmarks/experiments/socketwatch.mjs`): 3 % of the call's CPU on a quiet machine, where a call is mostly
 * waiting and its throughput did not change, 12-30 % on a busy one. Here one timer per connection looks at every
 * socket once a tick (a twentieth of the limit, 5-100 ms): a socket with replies outstanding whose count of received
 * bytes has not moved since the first tick that saw it waiting is destroyed once `limit` has passed since that tick.
 * So it is replaced between `limit` and `limit` + 2 ticks after it went silent, where ioredis' timer fired at `limit`.
 *
 * Real time, not Effect's `Clock`: a socket's silence is the network's, and a test moving a `TestClock` forward must
 * not replace real sockets (ioredis' timers did not either).
 *
 * @internal
 */
import type { Redis } from "ioredis"

/** What the watch reads of an ioredis client (ioredis 6: `stream` and `commandQueue` are public fields). */
interface Watched {
  readonly stream?: { readonly bytesRead: number; readonly destroyed: boolean; destroy(error: Error): void } | undefined
  readonly commandQueue?: { readonly length: number } | undefined
}

interface Seen {
  stream: unknown
  bytes: number
  /** When the socket was first seen waiting with nothing received since; `undefined` while it is not waiting. */
  since: number | undefined
}

/** The tick for a limit: a twentieth of it, 5-100 ms (as the deadlines' sweeper). */
export const tickOf = (limit: number): number => Math.min(100, Math.max(5, Math.floor(limit / 20)))

/** The error a silent socket is destroyed with: ioredis' own, which `Classification` reads as `socket_timeout`. */
export const silenceError = (limit: number): Error =>
  new Error(`Socket timeout. Expecting data, but didn't receive any in ${limit}ms.`)

/**
 * One look at the sockets at `now` (ms): destroys those silent for `limit` ms with replies outstanding. `seen` holds
 * what the previous looks saw, per socket index.
 */
export const look = (clients: ReadonlyArray<Redis>, seen: Array<Seen | undefined>, limit: number, now: number): void => {
  for (let i = 0; i < clients.length; i++) {
    const client = clients[i] as unknown as Watched
    const stream = client.stream
    const state = seen[i] ??= { stream: undefined, bytes: 0, since: undefined }
    if (stream === undefined || stream.destroyed || (client.commandQueue?.length ?? 0) === 0) {
      state.since = undefined
      continue
    }
    const bytes = stream.bytesRead
    if (state.since === undefined || state.stream !== stream || state.bytes !== bytes) {
      state.stream = stream
      state.bytes = bytes
      state.since = now
    } else if (now - state.since >= limit) {
      state.since = undefined
      stream.destroy(silenceError(limit))
    }
  }
}

/**
 * Watches `clients` (read at each tick: the array may grow) until the returned function is called. `limit()` is read
 * at each tick, so a new limit applies from the next one.
 */
export const watch = (clients: ReadonlyArray<Redis>, limit: () => number): () => void => {
  const seen: Array<Seen | undefined> = []
  let timer: ReturnType<typeof setTimeout> | undefined
  const tick = () => {
    const current = limit()
    look(clients, seen, current, performance.now())
    timer = setTimeout(tick, tickOf(current))
    timer.unref()
  }
  timer = setTimeout(tick, tickOf(limit()))
  timer.unref()
  return () => clearTimeout(timer)
}
