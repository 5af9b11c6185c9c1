// The clock the processes of test/src/hybrid.test.ts share: `performance.timeOrigin + performance.now()` (the wall
// clock at sub-millisecond resolution), corrected by this process' own measured offset to the system clock.
//
// All the processes run on one machine, so they read one system clock; but each fixes `performance.timeOrigin` once
// at its start (a monotonic reading and a wall-clock reading taken one after the other), and a process preempted
// between the two carries the gap for its whole life. So each measures, at load, where `Date.now()` ticks over to
// the next millisecond relative to its own `timeOrigin + now()` (median of 7 ticks): the offset, a few microseconds
// wide. `wall()` adds it; `offsetMs` is reported with the figures.
const measure = () => {
  const samples = []
  for (let n = 0; n < 7; n++) {
    const start = Date.now()
    let before
    let tick
    do {
      before = performance.timeOrigin + performance.now()
      tick = Date.now()
    } while (tick === start)
    const after = performance.timeOrigin + performance.now()
    samples.push(tick - (before + after) / 2)
  }
  samples.sort((a, b) => a - b)
  return samples[3]
}

export const offsetMs = measure()
export const wall = () => performance.timeOrigin + performance.now() + offsetMs
