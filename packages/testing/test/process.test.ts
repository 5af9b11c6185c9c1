import * as ChildProcess from "node:child_process"
import * as Command from "@effect/platform/Command"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Platform from "../src/internal/platform.js"
import * as Proc from "../src/internal/process.js"

/** Child processes of this test process running `command`. */
const children = (command: string): Array<string> =>
  ChildProcess.execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(process.pid)], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.includes(command))

describe("internal/process", () => {
  it.live("run collects stdout, stderr and the exit code", () =>
    Effect.gen(function*() {
      const out = yield* Platform.provide(
        Proc.run(Command.make("sh", "-c", "echo out; echo err >&2; exit 3"), "5 seconds")
      )
      expect(out).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" })
    }))

  it.live("run kills the process (SIGKILL, reaped) after its timeout, and when interrupted", () =>
    Effect.gen(function*() {
      // `trap '' TERM`: SIGTERM alone (the platform's own release) would not end it
      const stubborn = Command.make("sh", "-c", "trap '' TERM; sleep 30 # steadfast-run-test")
      const started = Date.now()
      const error = yield* Effect.flip(Platform.provide(Proc.run(stubborn, "200 millis")))
      expect(error).toBe("timeout")
      expect(Date.now() - started).toBeLessThan(2000)
      expect(children("steadfast-run-test")).toEqual([])
      const fiber = yield* Effect.fork(Platform.provide(Proc.run(stubborn, "30 seconds")))
      yield* Effect.sleep("200 millis")
      yield* Fiber.interrupt(fiber)
      expect(children("steadfast-run-test")).toEqual([])
    }))

  it.live("spawn: signal waits for the exit within its bound, stderr is kept, release frees the handle", () =>
    Effect.gen(function*() {
      const ignoresTerm = Command.make("sh", "-c", "trap '' TERM; echo starting >&2; sleep 30")
      const child = yield* Platform.provide(Proc.spawn(ignoresTerm))
      expect(child.exit()).toBeUndefined()
      // The shell has set its trap once it wrote to stderr: a SIGTERM sent before that would kill it.
      for (let i = 0; i < 500 && !child.stderr().includes("starting"); i++) yield* Effect.sleep("10 millis")
      expect(child.stderr()).toBe("starting\n")
      expect(yield* child.signal("SIGTERM", "300 millis")).toBe(false)
      expect(child.exit()).toBeUndefined()
      expect(yield* child.signal("SIGKILL", "5 seconds")).toBe(true)
      expect(child.exit()).toBe("killed by SIGKILL")
      yield* child.stderrRead("1 second")
      expect(child.stderr()).toBe("starting\n")
      yield* child.release
      expect(yield* child.signal("SIGKILL", "1 second")).toBe(true) // nothing to do once exited
    }))
})
