import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { RedisServer } from "@steadfast/testing"
import { connect, connectError } from "./utils/RespClient.js"

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    expect((e as NodeJS.ErrnoException).code).toBe("ESRCH")
    return false
  }
}

/** redis-server processes whose parent is this test process. */
const redisChildren = (): Array<string> =>
  ChildProcess.execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.includes("redis-server"))

describe("RedisServer", () => {
  it.scoped("starts on a free port and answers commands", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      expect(server.host).toBe("127.0.0.1")
      expect(server.port).toBeGreaterThan(0)
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`)
      expect(server.urlWithoutAuth).toBe(server.url)
      expect(server.password).toBeUndefined()
      expect(yield* server.pid).toBeTypeOf("number")
      expect(yield* server.command("PING")).toBe("PONG")
      expect(yield* server.command("SET", "k", "v")).toBe("OK")
      expect(yield* server.command("GET", "k")).toBe("v")
      expect(yield* server.command("GET", "missing")).toBeNull()
      expect(yield* server.command("RPUSH", "l", "a", "b")).toBe(2)
      expect(yield* server.command("LRANGE", "l", "0", "-1")).toEqual(["a", "b"])
      expect(yield* server.command("CONFIG", "GET", "save")).toEqual(["save", ""])
      expect(yield* server.command("CONFIG", "GET", "appendonly")).toEqual(["appendonly", "no"])
    }))

  it.scoped("returns error replies as values", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const reply = yield* server.command("NOSUCHCOMMAND")
      expect(reply).toMatchObject({ _tag: "Error", message: expect.stringContaining("unknown command") })
      // DEBUG is enabled for tests
      expect(yield* server.command("DEBUG", "SLEEP", "0")).toBe("OK")
    }))

  it.scoped("fails a command that gets no reply within commandTimeout", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ commandTimeout: "200 millis" })
      const error = yield* Effect.flip(server.command("DEBUG", "SLEEP", "1"))
      expect(error._tag).toBe("RedisServerError")
      expect(error.message).toContain("no reply")
    }))

  it.scoped("requires the password and command authenticates", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ password: "s3cret" })
      expect(server.url).toBe(`redis://:s3cret@127.0.0.1:${server.port}`)
      expect(server.urlWithoutAuth).toBe(`redis://127.0.0.1:${server.port}`)
      expect(server.password).toBe("s3cret")
      expect(yield* server.command("PING")).toBe("PONG")
      const raw = yield* connect(server.port)
      expect(yield* raw.send("PING")).toMatchObject({ _tag: "Error", message: expect.stringMatching(/^NOAUTH/) })
      expect(yield* raw.send("AUTH", "wrong")).toMatchObject({ _tag: "Error", message: expect.stringMatching(/^WRONGPASS/) })
      expect(yield* raw.send("AUTH", "s3cret")).toBe("OK")
      expect(yield* raw.send("PING")).toBe("PONG")
    }))

  it.scoped("creates ACL users", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({
        users: [{ username: "alice", password: "pw a" }, { username: "bob", password: "pw-b", rules: "on ~* +get" }]
      })
      expect(server.url).toBe(`redis://alice:pw%20a@127.0.0.1:${server.port}`)
      expect(yield* server.command("ACL", "WHOAMI")).toBe("alice")
      const raw = yield* connect(server.port)
      expect(yield* raw.send("AUTH", "bob", "pw-b")).toBe("OK")
      expect(yield* raw.send("GET", "k")).toBeNull()
      expect(yield* raw.send("SET", "k", "v")).toMatchObject({ _tag: "Error", message: expect.stringMatching(/^NOPERM/) })
    }))

  it.scoped("starts when the authenticating user may not run INFO", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ users: [{ username: "limited", password: "pw", rules: "on ~* +get" }] })
      expect(server.username).toBe("limited")
      expect(yield* server.command("GET", "k")).toBeNull()
      expect(yield* server.command("INFO")).toMatchObject({ _tag: "Error", message: expect.stringMatching(/^NOPERM/) })
    }))

  it.scoped("applies extra config lines", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ config: ["timeout 7", "maxclients 50"] })
      expect(yield* server.command("CONFIG", "GET", "timeout")).toEqual(["timeout", "7"])
      expect(yield* server.command("CONFIG", "GET", "maxclients")).toEqual(["maxclients", "50"])
    }))

  it.scoped("serves TLS with a generated CA", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ tls: true, password: "pw" })
      const tls = server.tls!
      expect(tls.ca).toContain("BEGIN CERTIFICATE")
      expect(Fs.existsSync(tls.certFile) && Fs.existsSync(tls.keyFile) && Fs.existsSync(tls.caFile)).toBe(true)
      expect(server.url).toBe(`rediss://:pw@127.0.0.1:${server.port}`)
      expect(yield* server.command("PING")).toBe("PONG")
      const trusted = yield* connect(server.port, { tls: { ca: tls.ca } })
      expect(yield* trusted.send("AUTH", "pw")).toBe("OK")
      expect(yield* trusted.send("PING")).toBe("PONG")
      const untrusted = yield* Effect.flip(connect(server.port, { tls: {} }))
      expect(untrusted.code).toMatch(/^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/)
      // also valid for the name "localhost"
      const byName = yield* connect(server.port, { tls: { ca: tls.ca, servername: "localhost" } })
      expect(yield* byName.send("AUTH", "pw")).toBe("OK")
    }))

  it.scoped("stop and start on the same port", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ password: "pw" })
      const pid = (yield* server.pid)!
      yield* server.stop
      expect(yield* server.pid).toBeUndefined()
      expect(isAlive(pid)).toBe(false)
      expect(yield* connectError(server.port)).toBe("ECONNREFUSED")
      expect((yield* Effect.flip(server.command("PING")))._tag).toBe("RedisServerError")
      yield* server.stop // no-op when stopped
      yield* server.start
      const pid2 = (yield* server.pid)!
      expect(pid2).not.toBe(pid)
      expect(yield* server.command("PING")).toBe("PONG")
      yield* server.start // no-op when running
      expect(yield* server.pid).toBe(pid2)
      yield* server.restart
      expect(yield* server.pid).not.toBe(pid2)
      expect(isAlive(pid2)).toBe(false)
      expect(yield* server.command("PING")).toBe("PONG")
    }))

  it.scoped("kill stops the process at once", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const pid = (yield* server.pid)!
      const client = yield* connect(server.port)
      yield* server.kill
      expect(isAlive(pid)).toBe(false)
      yield* client.closed // the kernel closes the sockets of a killed process
      expect(yield* connectError(server.port)).toBe("ECONNREFUSED")
      yield* server.start
      expect(yield* server.command("PING")).toBe("PONG")
    }))

  it.live("closing the scope kills the process and removes its directory", () =>
    Effect.gen(function*() {
      const { dir, pid } = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* RedisServer.make({ tls: true })
        const dir = (yield* server.command("CONFIG", "GET", "dir")) as ReadonlyArray<string>
        return { dir: dir[1]!, pid: (yield* server.pid)! }
      }))
      expect(isAlive(pid)).toBe(false)
      expect(Fs.existsSync(dir)).toBe(false)
      expect(redisChildren()).toEqual([])
    }))

  it.live("interrupting make at any point leaves no process behind", () =>
    Effect.gen(function*() {
      for (const delay of [0, 1, 3, 5, 10, 20, 40]) {
        const fiber = yield* Effect.fork(Effect.scoped(RedisServer.make()))
        yield* Effect.sleep(delay)
        yield* Fiber.interrupt(fiber)
        expect(redisChildren()).toEqual([])
      }
    }))

  it.live("a server that cannot start fails with its log and leaves no process", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(RedisServer.make({ config: ["no-such-directive yes"] })))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(Effect.scoped(RedisServer.make({ config: ["no-such-directive yes"] })))
      expect(error.message).toContain("Bad directive")
      expect(redisChildren()).toEqual([])
    }))

  it.live("fails when the port is taken by another server", () =>
    Effect.scoped(Effect.gen(function*() {
      const first = yield* RedisServer.make()
      const error = yield* Effect.flip(Effect.scoped(RedisServer.make({ port: first.port, startTimeout: "3 seconds" })))
      expect(error.message).toContain("Address already in use")
      expect(redisChildren()).toHaveLength(1)
    })))

  it.effect("layer provides the server as a service", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.RedisServer
      expect(yield* server.command("PING")).toBe("PONG")
    }).pipe(Effect.provide(RedisServer.layer())))
})
