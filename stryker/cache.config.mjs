import { configFor } from "./config.mjs"

export default configFor("cache")
