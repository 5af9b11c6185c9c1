// Shared StrykerJS configuration: `configFor("resilience")` is the run of one workspace package.
// Run it with `pnpm mutate <package>` (see mutate.mjs); MUTATION.md has the scores and the equivalent mutants.
import { fileURLToPath } from "node:url"

/**
 * Plugins by absolute path: with pnpm's layout Stryker's default `@stryker-mutator/*` glob looks next to
 * `@stryker-mutator/core` inside `node_modules/.pnpm`, where the runner and the checker are not, and a bare name is
 * imported from there too.
 */
const plugin = (name) => fileURLToPath(import.meta.resolve(name))

/** @param {string} pkg the directory name under `packages/` */
export const configFor = (pkg) => ({
  $schema: "../node_modules/@stryker-mutator/core/schema/stryker-schema.json",
  packageManager: "pnpm",
  plugins: [plugin("@stryker-mutator/vitest-runner"), plugin("@stryker-mutator/typescript-checker")],
  testRunner: "vitest",
  vitest: {
    // Only this package's tests, plus stryker/load.test.ts (see there); paths are relative to the sandbox root.
    configFile: `stryker/vitest.${pkg}.config.ts`,
    // Static mutants run every test file (the load test included), not only the files vite sees importing the
    // mutated file.
    related: false
  },
  mutate: [`packages/${pkg}/src/**/*.ts`],
  // Type-invalid mutants are reported as CompileError and left out of the score (they are not programs `tsc -b`
  // would accept). The tsconfig relaxes `noUnusedLocals` / `noUnusedParameters`: a mutant that only leaves a
  // variable unused (an emptied `finally`) is a real program and must be caught by a test, not by a lint rule.
  checkers: ["typescript"],
  tsconfigFile: `stryker/tsconfig.${pkg}.json`,
  coverageAnalysis: "perTest",
  // A static mutant (one in code that runs while modules load) re-runs every test file with a fresh module graph:
  // ~25 s on a busy 2-core machine, above Stryker's default allowance (1.5 x net test time + 5 s + overhead), which
  // reported undetected static mutants as "Timeout" (counted as detected). 20 s of slack keeps real hangs as
  // timeouts without crediting slow runs.
  timeoutMS: 20_000,
  // The machine is shared: one test runner (plus one checker process).
  concurrency: 1,
  // The sandbox (a copy of the repository, every `node_modules` symlinked into it, `packages/*/node_modules`
  // included) rather than `inPlace`: mutating the working tree would break anyone else's build or test run for
  // the duration.
  inPlace: false,
  tempDirName: ".stryker-tmp",
  // Build outputs only: vite reads every tsconfig.json the root one references, so the other projects stay.
  ignorePatterns: ["/build", "**/build", "**/dist", "/reports", "*.tsbuildinfo"],
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: `build/mutation/${pkg}/index.html` },
  jsonReporter: { fileName: `build/mutation/${pkg}/mutation.json` },
  // `pnpm mutate <package> --incremental` re-tests only mutants whose code or tests changed since the last run.
  incrementalFile: `build/mutation/${pkg}/incremental.json`,
  thresholds: { high: 90, low: 75, break: null }
})
