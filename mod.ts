/**
 * mcp-gate: a stateless OAuth 2.1 gateway for MCP servers.
 *
 * Run it: `deno run -A mod.ts`, `bun run mod.ts`, or the compiled `mcp-gate`.
 * Embed it: `createGateway(loadConfig(env))` returns a Web-standard fetch handler.
 */
export { type ConnInfo, createGateway, type Gateway, type GatewayDeps } from "./src/app.ts";
export { type Config, loadConfig } from "./src/config.ts";
export { AuthError, ConfigError, GatewayError, UpstreamError } from "./src/errors.ts";
export { createLogger, type Logger } from "./src/logging.ts";
export { Version } from "./src/version.ts";

if (import.meta.main) {
  const { detectRuntime } = await import("./src/runtime.ts");
  const { main } = await import("./src/cli.ts");
  await main(await detectRuntime());
}
