// Experiment (issue 12, session 14): Effect's scheduler without its per-resume array literals, to test whether they
// are the allocation site V8 pretenures. `node --import ./benchmarks/experiments/scheduler-hook.mjs …` rewrites
// effect's `dist/esm/Scheduler.js` as it is loaded (nothing on disk changes): each `[priority, [task]]` a resume
// pushes, and the `[]` a drain leaves, become `Array.of(…)`, which allocates the same arrays without an allocation
// site (no memento, no pretenuring decision). Used by `pretenure.mjs`; fails loudly if the text it rewrites is gone.
import { register } from "node:module"
import { isMainThread } from "node:worker_threads"

if (isMainThread) register(import.meta.url)

export const load = async (url, context, nextLoad) => {
  const loaded = await nextLoad(url, context)
  if (!/\/effect\/dist\/esm\/Scheduler\.js$/.test(url)) return loaded
  const text = String(loaded.source)
  const literals = text.split("[priority, [task]]").length - 1
  const drains = text.split("this.tasks.buckets = [];").length - 1
  if (literals === 0 || drains === 0) throw new Error(`scheduler-hook: ${url} no longer has the literals it rewrites`)
  const source = text
    .replaceAll("[priority, [task]]", "Array.of(priority, Array.of(task))")
    .replaceAll("this.tasks.buckets = [];", "this.tasks.buckets = Array.of();")
  return { ...loaded, source, shortCircuit: true }
}
