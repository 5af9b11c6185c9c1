import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { parseArgs } from "../src/demo/args.js"
import { chartIds, renderReport } from "../src/demo/report.js"
import { runDemo, type Summary } from "../src/demo/run.js"

// The demo's HTML report, opened in headless Chromium (Debian's `chromium`; `.ci/run` installs it when missing):
// the page's inline script draws the charts as SVG and marks what it drew; `--dump-dom` gives the DOM after the
// script ran, and the tests count what is in it.

const chromium = process.env["CHROMIUM"] ?? "chromium"
const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "steadfast-report-"))
afterAll(() => Fs.rmSync(work, { recursive: true, force: true }))

/** A recorded 10 s run of the real demo (`node examples/dist/demo.js --duration 10 --json …`). */
const recorded = (): Summary =>
  JSON.parse(
    Fs.readFileSync(fileURLToPath(new URL("./fixtures/demo-run-10s.json", import.meta.url)), "utf8")
  ) as Summary

let pages = 0
/** Writes the page, loads it in headless Chromium and returns the DOM after its scripts ran. */
const dumpDom = (html: string): Promise<string> => {
  const n = pages++
  const file = Path.join(work, `report-${n}.html`)
  Fs.writeFileSync(file, html)
  const profile = Path.join(work, `profile-${n}`)
  return new Promise((resolve, reject) =>
    execFile(
      chromium,
      [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        `--user-data-dir=${profile}`,
        "--dump-dom",
        pathToFileURL(file).href
      ],
      { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error !== null) {
          const missing = (error as NodeJS.ErrnoException).code === "ENOENT"
          reject(
            new Error(
              missing
                ? `${chromium} not found: install Debian's chromium (apt-get install -y chromium; .ci/run does this)`
                : `${chromium} failed: ${error.message}\n${stderr}`
            )
          )
        } else resolve(stdout)
      }
    )
  )
}

type Attributes = Record<string, string>
const attributes = (tag: string): Attributes =>
  Object.fromEntries(Array.from(tag.matchAll(/([\w:-]+)="([^"]*)"/g), (m) => [m[1]!, m[2]!]))
/** The opening tags of the elements called `name` in `html`, as attribute records. */
const elements = (html: string, name: string): Array<Attributes> =>
  Array.from(html.matchAll(new RegExp(`<${name}\\b([^>]*)>`, "g")), (m) => attributes(m[1]!))
const bodyOf = (dom: string): Attributes => attributes(/<body\b([^>]*)>/.exec(dom)?.[1] ?? "")

interface Chart {
  readonly figure: Attributes
  readonly series: Array<Attributes>
  readonly faults: Array<Attributes>
  readonly points: number
  readonly markers: number
  readonly text: Array<string>
}
const chart = (dom: string, id: string): Chart => {
  const match = new RegExp(`<figure\\b([^>]*id="chart-${id}"[^>]*)>([\\s\\S]*?)</figure>`).exec(dom)
  expect(match, `figure chart-${id}`).not.toBeNull()
  const inner = match![2]!
  return {
    figure: attributes(match![1]!),
    series: elements(inner, "path").filter((p) => p["class"] === "series"),
    faults: elements(inner, "rect").filter((r) => r["class"] === "fault"),
    points: elements(inner, "circle").filter((c) => c["class"] === "point").length,
    markers: elements(inner, "path").filter((p) => p["class"] === "breaker-open").length,
    text: Array.from(inner.matchAll(/<text\b[^>]*>([^<]*)<\/text>/g), (m) => m[1]!)
  }
}

/** A path's `d` draws something: it moves somewhere and every coordinate is a finite number. */
const drawsSomething = (d: string | undefined) =>
  d !== undefined && /^M/.test(d) && (d.match(/-?\d+(\.\d+)?/g) ?? []).length >= 2 && !/NaN|Infinity|undefined/.test(d)

/** What every drawn page has: four charts, axis labels, a legend, the faults shaded on each chart. */
const expectChartsDrawn = (dom: string, summary: Summary) => {
  const body = bodyOf(dom)
  expect(body["data-error"], "the inline script failed").toBeUndefined()
  expect(body["data-charts-drawn"]).toBe(String(chartIds.length))
  const charts = Object.fromEntries(chartIds.map((id) => [id, chart(dom, id)])) as Record<(typeof chartIds)[number], Chart>
  for (const id of chartIds) {
    const c = charts[id]
    // What the script says it drew is what is there.
    expect(c.figure["data-drawn"], id).toBe(String(c.series.length))
    for (const path of c.series) expect(drawsSomething(path["d"]), `${id}: d="${path["d"]}"`).toBe(true)
    // Every fault window is shaded, with a visible width, on every chart.
    expect(c.figure["data-faults"], id).toBe(String(summary.faults.length))
    expect(c.faults.map((r) => r["data-fault"]), id).toEqual(summary.faults.map((f) => f.fault))
    for (const rect of c.faults) expect(Number(rect["width"]), id).toBeGreaterThan(0)
    // Axis labels and a legend naming the fault shading.
    expect(c.text, id).toContain("time since start (s)")
    expect(c.text, id).toContain("fault window")
    expect(c.text.filter((t) => /^\d/.test(t)).length, `${id}: tick labels`).toBeGreaterThan(3)
  }
  return charts
}

describe("the demo's HTML report", () => {
  it("is one self-contained page: nothing to fetch", () => {
    const html = renderReport(recorded())
    expect(html).toMatch(/^<!DOCTYPE html>/)
    expect(html).not.toMatch(/<link\b/i)
    expect(html).not.toMatch(/\b(src|href)\s*=/i)
    expect(html).not.toMatch(/url\(|@import/i)
    // Two inline scripts: the data and the drawing code.
    expect(html.match(/<script\b/g)).toHaveLength(2)
    expect(html.match(/<\/script>/g)).toHaveLength(2)
  })

  it("draws a recorded 10 s run: throughput, p99 and (for steadfast) fallbacks and breaker, faults shaded", async () => {
    const summary = recorded()
    const dom = await dumpDom(renderReport(summary))
    const charts = expectChartsDrawn(dom, summary)
    const rows = summary.series.length

    // Throughput: one line per client, a point per second.
    expect(charts.throughput.series.map((p) => p["data-client"])).toEqual(["steadfast", "ioredis"])
    expect(charts.throughput.points).toBe(2 * rows)
    // p99: one line per client, a point per second in which operations completed; dashed "oldest waiting" lines
    // where operations waited longer than 1 s.
    const completed = (c: "steadfast" | "ioredis") => summary.series.filter((r) => (r.clients[c]?.ops ?? 0) > 0).length
    const stuck = (c: "steadfast" | "ioredis") => summary.series.filter((r) => (r.clients[c]?.stuck ?? 0) > 0).length
    const p99 = charts.latency.series.filter((p) => p["data-kind"] === "latency")
    expect(p99.map((p) => p["data-client"])).toEqual(["steadfast", "ioredis"])
    expect(charts.latency.series.filter((p) => p["data-kind"] === "oldest-waiting")).toHaveLength(
      (stuck("steadfast") > 0 ? 1 : 0) + (stuck("ioredis") > 0 ? 1 : 0)
    )
    expect(charts.latency.points).toBe(completed("steadfast") + completed("ioredis") + stuck("steadfast") + stuck("ioredis"))
    // ioredis had a second without any completed operation in this run: its p99 line has a gap there.
    expect(completed("ioredis")).toBeLessThan(rows)
    expect(p99[1]!["d"]!.match(/M/g)!.length).toBeGreaterThan(1)
    // Fallbacks and breaker: steadfast only; the legend says ioredis has neither.
    expect(charts.fallbacks.series.map((p) => p["data-client"])).toEqual(["steadfast"])
    expect(charts.fallbacks.points).toBe(rows)
    expect(charts.fallbacks.text).toContain("ioredis (defaults): no fallback")
    expect(charts.breaker.series.map((p) => p["data-client"])).toEqual(["steadfast"])
    expect(charts.breaker.text).toContain("ioredis (defaults): no breaker")
    // The breaker line reaches the "open" level, and every second in which it opened has a marker.
    const opened = summary.series.filter((r) => (r.clients["steadfast"]?.breakerOpens ?? 0) > 0).length
    expect(opened).toBeGreaterThan(0)
    expect(charts.breaker.markers).toBe(opened)
    expect(charts.breaker.figure["data-markers"]).toBe(String(opened))
    expect(charts.breaker.text).toEqual(expect.arrayContaining(["closed", "half-open", "open"]))
    // The fault names sit above the first chart.
    for (const f of summary.faults) expect(charts.throughput.text.some((t) => t.startsWith(f.fault))).toBe(true)
  }, 90_000)

  it("draws a memory-only run (one client, no faults, no breaker) and keeps text from the data inert", async () => {
    const run = recorded()
    const injected = "</script><script>document.body.setAttribute('data-injected', '1')</script>"
    const summary: Summary = {
      ...run,
      mode: "memory",
      faults: [],
      clients: { steadfast: run.clients.steadfast },
      verdict: { steadfastHeld: true, lines: [`held ${injected}`] },
      series: run.series.map((r) => ({
        t: r.t,
        clients: { steadfast: { ...r.clients["steadfast"]!, breaker: "NONE", breakerOpens: null } }
      }))
    }
    const dom = await dumpDom(renderReport(summary))
    const charts = expectChartsDrawn(dom, summary)
    expect(bodyOf(dom)["data-injected"]).toBeUndefined()
    expect(charts.throughput.series).toHaveLength(1)
    expect(charts.fallbacks.series).toHaveLength(1)
    expect(charts.breaker.series).toHaveLength(0)
    expect(charts.breaker.text).toContain("steadfast: no breaker")
  }, 90_000)

  it.live("draws a real, short demo run", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const summary = yield* runDemo({ duration: 6, recoveryGrace: 3, print: (line) => lines.push(line) })
      const output = lines.join("\n")
      expect(summary.mode, output).toBe("spawned")
      // The per-second rows carry what the charts plot.
      expect(summary.series.length).toBe(6)
      for (const row of summary.series) {
        expect(typeof row.clients["steadfast"]?.opsPerS).toBe("number")
        expect(typeof row.clients["ioredis"]?.opsPerS).toBe("number")
        expect(typeof row.clients["hybrid"]?.opsPerS).toBe("number")
        expect(row.clients["ioredis"]?.breakerOpens).toBeNull()
      }
      // The rows count the opens up to the last row; the total also counts any during the recovery grace after it.
      expect(summary.series.reduce((n, r) => n + (r.clients["steadfast"]?.breakerOpens ?? 0), 0)).toBeLessThanOrEqual(
        summary.clients.steadfast.breakerOpens
      )

      const html = renderReport(summary)
      // The summary table has the hybrid client's column and its L1 hit ratio.
      expect(html).toContain("<th class=\"hybrid\">steadfast hybrid</th>")
      expect(html).toContain("<th>L1 hit ratio</th>")
      const dom = yield* Effect.promise(() => dumpDom(html))
      const charts = expectChartsDrawn(dom, summary)
      expect(summary.faults.length).toBe(4)
      // steadfast, ioredis and the hybrid client; fallbacks and breaker for both Steadfast clients.
      expect(charts.throughput.series.map((p) => p["data-client"]).sort()).toEqual(["hybrid", "ioredis", "steadfast"])
      expect(charts.latency.series.filter((p) => p["data-kind"] === "latency").length).toBeGreaterThanOrEqual(1)
      expect(charts.fallbacks.series.map((p) => p["data-client"]).sort()).toEqual(["hybrid", "steadfast"])
      expect(charts.breaker.series.map((p) => p["data-client"]).sort()).toEqual(["hybrid", "steadfast"])
    }), 90_000)

  it("--html takes a file name and combines with --json and --duration", () => {
    const parsed = parseArgs(["--duration", "12", "--json", "a.json", "--html", "r.html"])
    expect(parsed.ok && parsed.options).toMatchObject({ duration: 12, json: "a.json", html: "r.html" })
    expect(parseArgs(["--html=r.html"])).toMatchObject({ ok: true, options: { html: "r.html" } })
    expect(parseArgs(["--html"]).ok).toBe(false)
  })
})
