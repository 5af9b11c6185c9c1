import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
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

/** Processes named `name` whose parent is this test process. */
const children = (name: string): Array<string> =>
  ChildProcess.execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.includes(name))

/** redis-server processes whose parent is this test process. */
const redisChildren = (): Array<string> => children("redis-server")

/** Open TCP sockets of this process (`process.getActiveResourcesInfo`). */
const openSockets = (): number => process.getActiveResourcesInfo().filter((kind) => kind === "TCPSocketWrap").length

/** Active handles and timers of this process, by kind, beyond those in `before`. */
const resourcesBeyond = (before: ReadonlyArray<string>): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1
  for (const kind of before) counts[kind] = (counts[kind] ?? 0) - 1
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0))
}

/** Runs `self` with `process.env[name]` set to `value`, restoring it afterwards. */
const withEnv = <A, E, R>(name: string, value: string, self: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const before = process.env[name]
      process.env[name] = value
      return before
    }),
    () => self,
    (before) =>
      Effect.sync(() => {
        if (before === undefined) delete process.env[name]
        else process.env[name] = before
      })
  )

/** A fresh, empty directory to use as TMPDIR, so that the test sees only its own temporary directories. */
const privateTmp = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "steadfast-tmp-test-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

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

  it.live("a server that exits on its own (SHUTDOWN) reads as stopped, and start spawns a new one", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const pid = (yield* server.pid)!
      // no reply: the server closes the connection as it exits
      const shutdown = yield* Effect.flip(server.command("SHUTDOWN", "NOSAVE"))
      expect(shutdown._tag).toBe("RedisServerError")
      for (let i = 0; i < 100 && (yield* server.pid) !== undefined; i++) yield* Effect.sleep("10 millis")
      expect(yield* server.pid).toBeUndefined()
      expect(isAlive(pid)).toBe(false)
      yield* server.start
      expect(yield* server.pid).not.toBe(pid)
      expect(yield* server.command("PING")).toBe("PONG")
    })))

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

  it.scoped("command gives the same replies as a raw RESP2 connection, whatever the command's case", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const raw = yield* connect(server.port)
      const commands: ReadonlyArray<ReadonlyArray<string>> = [
        ["HSET", "h", "f1", "v1", "f2", "v2"],
        ["hgetall", "h"], // ioredis turns the reply of a lower case `hgetall` into an object
        ["zadd", "z", "1", "a", "2", "b"],
        ["zrange", "z", "0", "-1", "WITHSCORES"],
        ["mset", "a", "1", "b", "2"],
        ["MGET", "a", "nope", "b"],
        ["INCRBY", "a", "41"],
        ["SET", "utf", "héllo ✓"],
        ["GET", "utf"],
        ["EVAL", "return {1, 'two', redis.error_reply('MYERR nested'), {3}, false}", "0"],
        ["EVAL", "return redis.error_reply('TOPERR top level')", "0"],
        ["XADD", "s", "1-1", "f", "v"],
        ["xrange", "s", "-", "+"],
        ["CONFIG", "GET", "maxmemory*"],
        ["SUBSCRIBE", "ch", "other"], // the first reply of a subscription: the raw connection subscribes too
        ["psubscribe", "p*"],
        ["UNSUBSCRIBE", "ch"],
        ["unsubscribe"]
      ]
      for (const args of commands) {
        const viaCommand = yield* server.command(...args)
        // the raw connection mirrors the write so that both see the same data
        const viaRaw = /subscribe/i.test(args[0]!)
          ? yield* Effect.scoped(Effect.flatMap(connect(server.port), (fresh) => fresh.send(...args)))
          : yield* raw.send(...(/^(HSET|zadd|mset|INCRBY|SET|XADD)$/.test(args[0]!) ? ["ECHO", "skip"] : args))
        if (viaRaw !== "skip") expect(viaCommand, args.join(" ")).toEqual(viaRaw)
      }
      expect(yield* server.command("hgetall", "h")).toEqual(["f1", "v1", "f2", "v2"])
      expect(yield* server.command("EVAL", "return {1, redis.error_reply('MYERR nested')}", "0")).toEqual([
        1,
        { _tag: "Error", message: "MYERR nested" }
      ])
      expect(yield* server.command("GET", "utf")).toBe("héllo ✓")
    }))

  it.scoped("a refused connection (maxclients) answers with the refusal as the reply, with or without AUTH", () =>
    Effect.gen(function*() {
      for (const password of [undefined, "pw"]) {
        const server = yield* RedisServer.make({ config: ["maxclients 1"], ...(password ? { password } : {}) })
        const filler = yield* connect(server.port)
        // the server registered the filler once it answers
        const answer = yield* filler.send("PING")
        if (password) expect(answer).toMatchObject({ _tag: "Error", message: expect.stringMatching(/^NOAUTH/) })
        else expect(answer).toBe("PONG")
        const refused = yield* server.command("PING")
        expect(refused).toEqual({ _tag: "Error", message: "ERR max number of clients reached" })
      }
    }))

  it.live("a command to a stalled (SIGSTOP) server times out and leaves no socket open", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make({ commandTimeout: "300 millis" })
      const pid = (yield* server.pid)!
      yield* Effect.acquireRelease(
        Effect.sync(() => process.kill(pid, "SIGSTOP")),
        () => Effect.sync(() => process.kill(pid, "SIGCONT"))
      )
      yield* Effect.sleep("50 millis") // the sockets of the start-up checks finish closing
      const before = openSockets()
      const started = Date.now()
      const error = yield* Effect.flip(server.command("PING"))
      expect(error.message).toContain("no reply after")
      expect(Date.now() - started).toBeLessThan(2000)
      // destroyed at once, not ended (which would wait for the stalled server's FIN up to ioredis' 2 s)
      yield* Effect.sleep("20 millis")
      expect(openSockets()).toBe(before)
    })))

  it.live("closing the scope kills a stalled (SIGSTOP) server and removes its directory", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const { dir, pid } = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const dir = (yield* server.command("CONFIG", "GET", "dir")) as ReadonlyArray<string>
        const pid = (yield* server.pid)!
        process.kill(pid, "SIGSTOP")
        return { dir: dir[1]!, pid }
      }))
      expect(Date.now() - started).toBeLessThan(3000)
      expect(isAlive(pid)).toBe(false)
      expect(Fs.existsSync(dir)).toBe(false)
      expect(redisChildren()).toEqual([])
    }))

  it.live("stop falls back to SIGKILL when SIGTERM is not acted on (stalled)", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const pid = (yield* server.pid)!
      process.kill(pid, "SIGSTOP") // SIGTERM stays pending while stopped
      const started = Date.now()
      yield* server.stop
      const took = Date.now() - started
      expect(took).toBeGreaterThanOrEqual(4900) // the bounded wait for SIGTERM
      expect(took).toBeLessThan(8000)
      expect(isAlive(pid)).toBe(false)
      expect(yield* server.pid).toBeUndefined()
      yield* server.start
      expect(yield* server.command("PING")).toBe("PONG")
    })), 20_000)

  it.live("interrupting make at any point leaves no process and no directory behind", () =>
    Effect.scoped(Effect.gen(function*() {
      const tmp = yield* privateTmp
      yield* withEnv(
        "TMPDIR",
        tmp,
        Effect.gen(function*() {
          for (const delay of [0, 1, 2, 5, 10, 20, 40, 80]) {
            const fiber = yield* Effect.fork(Effect.scoped(RedisServer.make({ tls: delay % 2 === 0 })))
            yield* Effect.sleep(delay)
            yield* Fiber.interrupt(fiber)
            expect(Fs.readdirSync(tmp), `after ${delay} ms`).toEqual([])
            expect(redisChildren()).toEqual([])
            expect(children("openssl")).toEqual([]) // the certificates of a TLS server

          }
          // and a server that starts uses this TMPDIR, so the check above looks at the right place
          const dir = yield* Effect.scoped(Effect.flatMap(RedisServer.make(), (server) => {
            expect(Fs.readdirSync(tmp)).toHaveLength(1)
            return server.command("CONFIG", "GET", "dir")
          }))
          expect(String((dir as ReadonlyArray<string>)[1])).toContain(tmp)
          expect(Fs.readdirSync(tmp)).toEqual([])
        })
      )
    })))

  it.live("a redis-server that cannot be spawned fails, and its directory is removed", () =>
    Effect.scoped(Effect.gen(function*() {
      const tmp = yield* privateTmp
      const error = yield* withEnv(
        "TMPDIR",
        tmp,
        withEnv("PATH", "/nonexistent", Effect.flip(Effect.scoped(RedisServer.make())))
      )
      expect(error._tag).toBe("RedisServerError")
      expect(error.message).toContain("redis-server could not be spawned")
      expect(Fs.readdirSync(tmp)).toEqual([])
    })))

  it.live("leaves no timer, socket or pipe behind once the scope is closed, also after refused commands", () =>
    Effect.gen(function*() {
      yield* Effect.sleep("100 millis")
      const before = process.getActiveResourcesInfo()
      yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* RedisServer.make({ password: "pw" })
        yield* server.kill
        const refused = yield* Effect.flip(server.command("PING"))
        expect(refused.message).toContain("ECONNREFUSED")
        yield* server.start
        expect(yield* server.command("PING")).toBe("PONG")
        yield* server.restart
      }))
      // ioredis' `disconnect` on a refused (closed) connection would leave its 2 s timer behind
      yield* Effect.sleep("100 millis")
      expect(resourcesBeyond(before)).toEqual({})
    }))

  it.effect("layer provides the server as a service", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.RedisServer
      expect(yield* server.command("PING")).toBe("PONG")
    }).pipe(Effect.provide(RedisServer.layer())))
})
