/**
 * The child side of an isolated happy path (`happy.ts`, {@link HappyConfig.isolate}): builds the contenders it is
 * given in this process, then measures them, collects garbage, reads Steadfast's stats and closes, on request over
 * IPC. Requests come one at a time (the parent awaits each answer).
 */
import * as Path from "node:path"
import type { Sample } from "./drive.js"
import { buildContenders, type ChildRequest } from "./happy.js"
import { serveParent } from "./ipc.js"
import { makeRuntime } from "./steadfast.js"
import { gcHeap } from "./util.js"

const child = () => {
  let contenders: Awaited<ReturnType<typeof buildContenders>> = []
  const named = (name: string) => {
    const contender = contenders.find((c) => c.name === name)
    if (contender === undefined) throw new Error(`no contender ${name} in this process`)
    return contender
  }
  const handle = async (req: ChildRequest): Promise<unknown> => {
    switch (req.op) {
      case "init":
        contenders = await buildContenders(req.names, req.target, req.keyspace, makeRuntime(req.verbose))
        // The ones with stats (Steadfast's instances): the parent asks only those.
        return contenders.filter((c) => c.stats !== undefined).map((c) => c.name)
      case "measure":
        return await named(req.name).measure(req.cell, req.durationMs) satisfies Sample
      case "gc":
        gcHeap()
        return null
      case "stats": {
        const stats = named(req.name).stats
        if (stats === undefined) throw new Error(`${req.name} has no stats`)
        return await stats()
      }
      case "close":
        for (const contender of contenders) await contender.close()
        contenders = []
        return null
    }
  }
  serveParent(handle)
}

if (process.argv[1] !== undefined && Path.basename(process.argv[1]) === "happy-child.js") child()
