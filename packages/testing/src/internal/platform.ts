import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as NodeCommandExecutor from "@effect/platform-node/NodeCommandExecutor"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * The platform services the process helpers use.
 *
 * @internal
 */
export type Platform = CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path

/**
 * Node's implementations of {@link Platform}. None of them holds a resource, so a context built from this layer
 * stays usable after the layer's own scope has closed.
 *
 * @internal
 */
export const layer: Layer.Layer<Platform> = Layer.mergeAll(NodeCommandExecutor.layer, NodePath.layer).pipe(
  Layer.provideMerge(NodeFileSystem.layer)
)

/**
 * Provides Node's platform services, so that callers never have to.
 *
 * @internal
 */
export const provide = <A, E, R>(self: Effect.Effect<A, E, R | Platform>): Effect.Effect<A, E, Exclude<R, Platform>> =>
  Effect.provide(self, layer)
