import { vitestConfigFor } from "./vitest.shared.js"

export default vitestConfigFor("cache")
