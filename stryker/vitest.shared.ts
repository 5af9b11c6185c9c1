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
  return defineConfig({
    resolve: project.resolve,
    test: {
      ...project.test,
      root: repoRoot,
      include: [...project.test.include.map((pattern) => `packages/${pkg}/${pattern}`), "stryker/load.test.ts"],
      provide: { strykerPackage: pkg }
    }
  })
}
