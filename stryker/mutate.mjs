// `pnpm mutate [package] [stryker options...]`: mutation-tests one workspace package (all configured packages, one
// after another, without one). Example: `pnpm mutate resilience`, `pnpm mutate resilience --incremental`.
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

const here = (path) => fileURLToPath(new URL(path, import.meta.url))
const packages = ["resilience", "redis", "cache"]
const stryker = fileURLToPath(new URL("bin/stryker.js", import.meta.resolve("@stryker-mutator/core/package.json")))

const [first, ...rest] = process.argv.slice(2)
const selected = first === undefined || first.startsWith("-") ? packages : [first]
const options = first === undefined || first.startsWith("-") ? process.argv.slice(2) : rest

for (const pkg of selected) {
  const config = here(`./${pkg}.config.mjs`)
  if (!existsSync(config)) {
    console.error(`pnpm mutate: no Stryker config for "${pkg}" (one of: ${packages.join(", ")})`)
    process.exit(2)
  }
  console.log(`\n== Stryker: @steadfast/${pkg} ==`)
  const { status } = spawnSync(process.execPath, [stryker, "run", config, ...options], {
    cwd: here(".."),
    stdio: "inherit"
  })
  if (status !== 0) process.exit(status ?? 1)
}
