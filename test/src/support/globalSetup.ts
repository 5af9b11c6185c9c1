/**
 * Collects the figures of every chaos scenario into one JSON array, `build/chaos-figures.json` (relative to the
 * repository root). Scenarios append one JSON line each to a parts file (files run one after another); this file
 * clears it before the run and turns it into the array after.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const here = Path.dirname(fileURLToPath(import.meta.url))
const BUILD_DIR = Path.resolve(here, "../../../build")
const PARTS = Path.join(BUILD_DIR, "chaos-figures.parts.ndjson")
const FILE = Path.join(BUILD_DIR, "chaos-figures.json")

export const setup = (): void => {
  Fs.mkdirSync(BUILD_DIR, { recursive: true })
  Fs.rmSync(PARTS, { force: true })
}

export const teardown = (): void => {
  const lines = Fs.existsSync(PARTS) ? Fs.readFileSync(PARTS, "utf8").split("\n").filter((l) => l.trim() !== "") : []
  const figures: Array<unknown> = lines.map((l) => JSON.parse(l) as unknown)
  Fs.writeFileSync(FILE, JSON.stringify(figures, null, 2) + "\n")
  Fs.rmSync(PARTS, { force: true })
}
