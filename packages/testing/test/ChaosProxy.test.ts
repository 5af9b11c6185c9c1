import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import { connect, connectError } from "./utils/RespClient.js"

const PING_BYTES = "*1\r\n$4\r\nPING\r\n".length // 14
const PONG_BYTES = "+PONG\r\n".length // 7

const setup = Effect.gen(function*() {
  const server = yield* RedisServer.make()
  const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
  return { server, proxy }
})

describe("ChaosProxy", () => {
  it.scopedLive("passes traffic through and counts it", () =>
    Effect.gen(function*() {
      const { proxy, server } = yield* setup
      expect(proxy.host).toBe("127.0.0.1")
      expect(proxy.port).not.toBe(server.port)
      expect(proxy.url()).toBe(`redis://127.0.0.1:${proxy.port}`)
      expect(proxy.url("p w")).toBe(`redis://:p%20w@127.0.0.1:${proxy.port}`)
      expect(yield* proxy.fault).toEqual(ChaosProxy.PassThrough())
      const client = yield* connect(proxy.port)
      expect(yield* client.send("PING")).toBe("PONG")
      const big = "x".repeat(256 * 1024)
      expect(yield* client.send("SET", "big", big)).toBe("OK")
      expect(yield* client.send("GET", "big")).toBe(big)
      expect(yield* proxy.connectionCount).toBe(1)
      const stats = yield* proxy.stats
      expect(stats.accepted).toBe(1)
      expect(stats.bytesUp).toBeGreaterThan(big.length + PING_BYTES)
      expect(stats.bytesDown).toBeGreaterThan(big.length + PONG_BYTES)
      // the client's FIN goes through and the connection is released
      client.socket.end()
      expect(yield* client.closed).toEqual({ ended: true, error: undefined })
      yield* Effect.sleep(50)
      expect(yield* proxy.connectionCount).toBe(0)
    }))

  it.scopedLive("Latency delays each direction and keeps order", () =>
    Effect.gen(function*() {
      const { proxy } = yield* setup
      const client = yield* connect(proxy.port)
      yield* proxy.setFault(ChaosProxy.Latency({ upstream: "100 millis", downstream: "150 millis" }))
      const start = Date.now()
      expect(yield* client.send("PING")).toBe("PONG")
      expect(Date.now() - start).toBeGreaterThanOrEqual(245)
      // pipelined commands, then the latency drops: replies still come in order
      yield* client.write("ECHO", "a")
      yield* client.write("ECHO", "b")
      yield* proxy.setFault(ChaosProxy.PassThrough())
      yield* client.write("ECHO", "c")
      const replies = [yield* client.next(), yield* client.next(), yield* client.next()]
      expect(replies).toEqual([Option.some("a"), Option.some("b"), Option.some("c")])
    }))

  it.scopedLive("Stall holds bytes both ways and delivers them intact afterwards", () =>
    Effect.gen(function*() {
      const { proxy, server } = yield* setup
      const client = yield* connect(proxy.port)
      expect(yield* client.send("PING")).toBe("PONG")
      yield* proxy.setFault(ChaosProxy.Stall())
      const big = "y".repeat(512 * 1024)
      yield* client.write("SET", "big", big)
      yield* client.write("GET", "big")
      expect(yield* client.next("300 millis")).toEqual(Option.none())
      // nothing reached the server either
      expect(yield* server.command("EXISTS", "big")).toBe(0)
      expect(yield* proxy.connectionCount).toBe(1)
      yield* proxy.setFault(ChaosProxy.PassThrough())
      expect(yield* client.next()).toEqual(Option.some("OK"))
      expect(yield* client.next()).toEqual(Option.some(big))
      expect(yield* client.send("PING")).toBe("PONG")
    }))

  it.scopedLive("Stall holds a reply that is already on its way", () =>
    Effect.gen(function*() {
      const { proxy } = yield* setup
      const client = yield* connect(proxy.port)
      yield* client.write("DEBUG", "SLEEP", "0.2") // the server replies while stalled
      yield* Effect.sleep(50)
      yield* proxy.setFault(ChaosProxy.Stall())
      expect(yield* client.next("500 millis")).toEqual(Option.none())
      yield* proxy.setFault(ChaosProxy.PassThrough())
      expect(yield* client.next()).toEqual(Option.some("OK"))
    }))

  it.scopedLive("Reset gives current and new clients ECONNRESET", () =>
    Effect.gen(function*() {
      const { proxy } = yield* setup
      const client = yield* connect(proxy.port)
      expect(yield* client.send("PING")).toBe("PONG")
      yield* proxy.setFault(ChaosProxy.Reset())
      expect((yield* client.closed).error).toBe("ECONNRESET")
      expect(yield* proxy.connectionCount).toBe(0)
      // reset right after the handshake: seen either while connecting or just after
      const fresh = yield* connect(proxy.port).pipe(
        Effect.flatMap((c) => c.closed),
        Effect.match({ onFailure: (e) => typeof e === "string" ? e : e.code, onSuccess: (outcome) => outcome.error })
      )
      expect(fresh).toBe("ECONNRESET")
      expect((yield* proxy.stats).resets).toBe(2)
      yield* proxy.setFault(ChaosProxy.PassThrough())
      const again = yield* connect(proxy.port)
      expect(yield* again.send("PING")).toBe("PONG")
    }))

  it.scopedLive("Close ends current and new connections without error", () =>
    Effect.gen(function*() {
      const { proxy } = yield* setup
      const client = yield* connect(proxy.port)
      expect(yield* client.send("PING")).toBe("PONG")
      yield* proxy.setFault(ChaosProxy.Close())
      expect(yield* client.closed).toEqual({ ended: true, error: undefined })
      const fresh = yield* connect(proxy.port)
      expect(yield* fresh.closed).toEqual({ ended: true, error: undefined })
      expect((yield* proxy.stats).closes).toBe(2)
    }))

  it.scopedLive("Refuse stops accepting, keeps current connections, resumes on the same port", () =>
    Effect.gen(function*() {
      const { proxy } = yield* setup
      const client = yield* connect(proxy.port)
      yield* proxy.setFault(ChaosProxy.Refuse())
      expect(yield* connectError(proxy.port)).toBe("ECONNREFUSED")
      expect(yield* client.send("PING")).toBe("PONG")
      yield* proxy.setFault(ChaosProxy.PassThrough())
      const fresh = yield* connect(proxy.port)
      expect(yield* fresh.send("PING")).toBe("PONG")
    }))

  it.scopedLive("ResetAfter resets each connection after N bytes", () =>
    Effect.gen(function*() {
      const { proxy } = yield* setup
      const before = yield* connect(proxy.port)
      expect(yield* before.send("PING")).toBe("PONG") // not counted: before the fault
      // one PING round trip (21 bytes) fits, the second PING crosses 30 bytes
      yield* proxy.setFault(ChaosProxy.ResetAfter({ bytes: 30 }))
      for (const client of [before, yield* connect(proxy.port)]) {
        expect(yield* client.send("PING")).toBe("PONG")
        yield* client.write("PING")
        expect((yield* client.closed).error).toBe("ECONNRESET")
      }
      const stats = yield* proxy.stats
      expect(stats.resets).toBe(2)
      expect(stats.bytesUp).toBe(PING_BYTES * 3 + 2 * (30 - PING_BYTES - PONG_BYTES))
    }))

  it.scopedLive("resetConnections and closeConnections act once", () =>
    Effect.gen(function*() {
      const { proxy } = yield* setup
      const a = yield* connect(proxy.port)
      expect(yield* a.send("PING")).toBe("PONG")
      yield* proxy.resetConnections
      expect((yield* a.closed).error).toBe("ECONNRESET")
      const b = yield* connect(proxy.port)
      expect(yield* b.send("PING")).toBe("PONG")
      yield* proxy.closeConnections
      expect(yield* b.closed).toEqual({ ended: true, error: undefined })
      const c = yield* connect(proxy.port)
      expect(yield* c.send("PING")).toBe("PONG")
      expect(yield* proxy.fault).toEqual(ChaosProxy.PassThrough())
    }))

  it.scopedLive("a dead upstream breaks the client connection", () =>
    Effect.gen(function*() {
      const { proxy, server } = yield* setup
      const client = yield* connect(proxy.port)
      expect(yield* client.send("PING")).toBe("PONG")
      yield* server.kill
      const outcome = yield* client.closed
      expect(outcome.ended || outcome.error !== undefined).toBe(true)
      const fresh = yield* connect(proxy.port)
      expect((yield* fresh.closed).error).toBe("ECONNRESET") // upstream refused: the client is reset
    }))

  it.scopedLive("closing the scope destroys connections and stops listening", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const { client, port } = yield* Effect.scoped(Effect.gen(function*() {
        const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
        yield* proxy.setFault(ChaosProxy.Latency({ upstream: "10 seconds", downstream: "10 seconds" }))
        const client = yield* connect(proxy.port)
        yield* client.write("PING") // a pending latency timer
        return { client, port: proxy.port }
      }))
      yield* client.closed
      expect(yield* connectError(port)).toBe("ECONNREFUSED")
    }))

  it.scopedLive("listens on a fixed port", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const port = (yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })).port
      const again = yield* Effect.scoped(ChaosProxy.make({ upstream: { host: server.host, port: server.port }, port }).pipe(
        Effect.flip
      ))
      expect(again._tag).toBe("ChaosProxyError")
      const other = yield* Effect.scoped(ChaosProxy.make({ upstream: { host: server.host, port: server.port }, port: 0 }))
      expect(other.port).not.toBe(port)
    }))
})
