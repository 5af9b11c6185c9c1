import { fileURLToPath } from "node:url"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

/**
 * Workspace packages resolve to their TypeScript sources, so tests never need a prior build.
 */
const alias = {
  "@steadfast/resilience": here("./packages/resilience/src/index.ts"),
  "@steadfast/redis": here("./packages/redis/src/index.ts"),
  "@steadfast/cache": here("./packages/cache/src/index.ts"),
  "@steadfast/testing": here("./packages/testing/src/index.ts"),
  "@steadfast/otel": here("./packages/otel/src/index.ts")
}

const project = (name: string, root: string, include: ReadonlyArray<string>, extra: Record<string, unknown> = {}) => ({
  resolve: { alias },
  test: {
    name,
    root: here(root),
    include: [...include],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    ...extra
  }
})

/** The test projects; `vitest.config.ts` passes this list as `test.projects`. */
export default [
  project("resilience", "./packages/resilience", ["test/**/*.test.ts"]),
  project("testing", "./packages/testing", ["test/**/*.test.ts"]),
  project("redis", "./packages/redis", ["test/**/*.test.ts"]),
  project("cache", "./packages/cache", ["test/**/*.test.ts"]),
  project("otel", "./packages/otel", ["test/**/*.test.ts"]),
  project("examples", "./examples", ["test/**/*.test.ts"]),
  project("chaos", "./test", ["src/**/*.test.ts"], {
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Timing and heap assertions: the files run one after another in a single fork (vitest 3.2 honours
    // `singleFork` per project; `fileParallelism` and `execArgv` are only read from the root config, so the heap
    // measurements expose gc at run time, see test/src/support/harness.ts).
    pool: "forks",
    poolOptions: { forks: { singleFork: true } },
    // Gathers every scenario's figures into build/chaos-figures.json.
    globalSetup: ["./src/support/globalSetup.ts"]
  })
]
