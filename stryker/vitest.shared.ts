import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import projects from "../vitest.workspace.js"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))

declare module "vitest" {
  interface ProvidedContext {
    /** The directory name under `packages/` of the package under mutation, for load.test.ts. */
    readonly strykerPackage: string
  }
}

/**
 * The vitest config of one package's Stryker run: that package's project from vitest.workspace.ts (same aliases and
 * options), rooted at the repository so that it also runs stryker/load.test.ts.
 */
export const vitestConfigFor = (pkg: string) => {
  const project = projects.find((p) => p.test.name === pkg)
  if (project === undefined) throw new Error(`no vitest project named ${pkg} in vitest.workspace.ts`)
  // `STRYKER_TESTS=test/Classification.test.ts,test/RedisConfig.test.ts`: run only these test files (paths relative
  // to the package) for a scoped run. A static mutant (module-level code, e.g. a row of a table) runs every test
  // file; in the redis package that is ~45 s per mutant, most of it Sentinel.test.ts and Cluster.test.ts, which
  // spawn servers. Fewer tests can only turn Killed into Survived, never the reverse, so a narrowed run's score is a
  // lower bound; its survivors are re-run with the full suite or triaged by hand (MUTATION.md says which).
  const only = process.env.STRYKER_TESTS?.split(",").filter((f) => f.length > 0)
  return defineConfig({
    resolve: project.resolve,
    test: {
      ...project.test,
      root: repoRoot,
      include: [...(only ?? project.test.include).map((pattern) => `packages/${pkg}/${pattern}`), "stryker/load.test.ts"],
      provide: { strykerPackage: pkg }
    }
  })
}
