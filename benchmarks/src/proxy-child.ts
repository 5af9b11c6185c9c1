/**
 * A `ChaosProxy` with `Latency` in a child process of its own (`remote.ts` forks it), so the proxy's timers and
 * copies do not run on the benchmark's event loop, as a network would not. Arguments: upstream host, upstream port,
 * latency client-to-server ms, latency server-to-client ms. Sends `{ port }` to the parent once the fault is in effect;
 * exits when the parent disconnects.
 */
import { ChaosProxy } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

const [host = "127.0.0.1", port = "6379", up = "0.5", down = "0.5"] = process.argv.slice(2)
process.on("disconnect", () => process.exit(0))

Effect.runPromise(
  Effect.scoped(
    Effect.gen(function*() {
      const proxy = yield* ChaosProxy.make({ upstream: { host, port: Number(port) } })
      yield* proxy.setFault(ChaosProxy.Latency({ upstream: Duration.millis(Number(up)), downstream: Duration.millis(Number(down)) }))
      process.send?.({ port: proxy.port })
      return yield* Effect.never
    })
  )
).catch((error) => {
  process.stderr.write(`proxy-child: ${String(error)}\n`)
  process.exit(1)
})
