/**
 * Run by every Stryker run (see vitest.shared.ts), never by the normal test suite, where each test file's own
 * imports already show this.
 *
 * A mutant that makes the package throw while its modules load (e.g. `Retry.none` failing its own validation) is a
 * broken program for every user. But vitest reports a test file that fails to import as a file error with no test
 * results, and Stryker's vitest runner counts "no failed test" as Survived. Importing the package inside a test
 * turns that failure into a failed test, so such mutants are counted as killed by an actual test run.
 */
import { expect, inject, it } from "vitest"

it("the package under mutation loads", async () => {
  const pkg = inject("strykerPackage")
  const module: Record<string, unknown> = await import(`../packages/${pkg}/src/index.ts`)
  expect(Object.keys(module).length).toBeGreaterThan(0)
})
