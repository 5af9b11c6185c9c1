import * as Net from "node:net"
import * as Effect from "effect/Effect"

/**
 * `count` distinct free TCP ports of `host`: every listener stays open until all are bound, so the ports differ.
 *
 * @internal
 */
export const freePorts = (host: string, count: number): Effect.Effect<ReadonlyArray<number>, Error> =>
  Effect.async((resume) => {
    const servers: Array<Net.Server> = []
    const ports: Array<number> = []
    let failed = false
    const closeAll = (then: () => void) => {
      let open = servers.length
      if (open === 0) return then()
      servers.forEach((server) =>
        server.close(() => {
          if (--open === 0) then()
        })
      )
    }
    const listenNext = () => {
      if (ports.length === count) return closeAll(() => resume(Effect.succeed(ports)))
      const server = Net.createServer()
      server.once("error", (cause) => {
        if (failed) return
        failed = true
        closeAll(() => resume(Effect.fail(cause)))
      })
      server.listen(0, host, () => {
        servers.push(server)
        ports.push((server.address() as Net.AddressInfo).port)
        listenNext()
      })
    }
    listenNext()
    return Effect.sync(() => servers.forEach((server) => server.close()))
  })
