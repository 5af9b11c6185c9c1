/**
 * Request and answer over a forked child's IPC channel, for the tools that measure in processes of their own (`ab.ts`
 * with `ab-worker.ts`, one process per build; the happy path with `happy-child.ts`, one per library). The parent
 * sends `{ id, req }`; the child answers `{ id, ok, result | error }`.
 */
import { type ChildProcess, fork } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

export interface Child<R> {
  /** Sends a request; settles with the child's answer, or fails with its error (prefixed with `label`). */
  readonly call: <A>(req: R) => Promise<A>
  readonly child: ChildProcess
}

/** Forks `script` (a file next to this one) with these node flags, its output on ours. */
export const forkChild = <R>(script: string, label: string, execArgv: ReadonlyArray<string>): Child<R> => {
  const child = fork(Path.join(Path.dirname(fileURLToPath(import.meta.url)), script), [], {
    execArgv: [...execArgv],
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  let next = 0
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  child.on("message", (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
    const w = waiting.get(m.id)
    waiting.delete(m.id)
    if (m.ok) w?.resolve(m.result)
    else w?.reject(new Error(`${label}: ${m.error}`))
  })
  child.on("exit", (code) => {
    for (const w of waiting.values()) w.reject(new Error(`${label}: its process exited (${code})`))
    waiting.clear()
  })
  const call = <A>(req: R) =>
    new Promise<A>((resolve, reject) => {
      const id = next++
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject })
      child.send({ id, req })
    })
  return { call, child }
}

/** The child's side: answers each request with `handle`'s result or error; exits when the parent disconnects. */
export const serveParent = <R>(handle: (req: R) => Promise<unknown>): void => {
  process.on("message", (message: { id: number; req: R }) => {
    handle(message.req).then(
      (result) => process.send!({ id: message.id, ok: true, result }),
      (error) => process.send!({ id: message.id, ok: false, error: error instanceof Error ? error.stack ?? error.message : String(error) })
    )
  })
  process.on("disconnect", () => process.exit(0))
}
