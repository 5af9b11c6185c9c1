/** `RedisServer` and `ChaosProxy` from @steadfast/testing, held in a scope the promise-based harness closes. */
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"

export interface Lab {
  readonly server: RedisServer.RedisServer
  readonly proxy: () => Promise<ChaosProxy.ChaosProxy>
  readonly fault: (proxy: ChaosProxy.ChaosProxy, fault: ChaosProxy.Fault) => Promise<void>
  readonly command: (...args: ReadonlyArray<string>) => Promise<RedisServer.RedisReply>
  readonly close: () => Promise<void>
}

export const openLab = async (): Promise<Lab> => {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(Scope.extend(RedisServer.make(), scope))
  return {
    server,
    proxy: () =>
      Effect.runPromise(Scope.extend(ChaosProxy.make({ upstream: { host: server.host, port: server.port } }), scope)),
    fault: (proxy, fault) => Effect.runPromise(proxy.setFault(fault)),
    command: (...args) => Effect.runPromise(server.command(...args)),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

export { ChaosProxy }
