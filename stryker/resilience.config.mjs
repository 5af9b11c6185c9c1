import { configFor } from "./config.mjs"

export default configFor("resilience")
