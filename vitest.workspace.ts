import { fileURLToPath } from "node:url"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

/**
 * Workspace packages resolve to their TypeScript sources, so tests never need a prior build.
 */
const alias = {
  "@steadfast/resilience": here("./packages/resilience/src/index.ts"),
  "@steadfast/redis": here("./packages/redis/src/index.ts"),
  "@steadfast/cache": here("./packages/cache/src/index.ts"),
  "@steadfast/testing": here("./packages/testing/src/index.ts")
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
  project("examples", "./examples", ["test/**/*.test.ts"]),
  project("chaos", "./test", ["src/**/*.test.ts"], { testTimeout: 120_000, hookTimeout: 60_000 })
]
