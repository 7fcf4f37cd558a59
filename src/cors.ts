/**
 * Browser rules: which origins may call the gateway (CORS and the DNS-rebinding check
 * of the MCP transport spec), and the CORS headers that let a browser client read the
 * challenge and the MCP session headers.
 */
import type { Config } from "./config.ts";

export const AllowMethods = "GET, POST, DELETE, OPTIONS";
const AllowHeaders = [
  "Authorization",
  "Content-Type",
  "Accept",
  "MCP-Protocol-Version",
  "Mcp-Session-Id",
  "Mcp-Method",
  "Mcp-Name",
  "Last-Event-ID",
  "traceparent",
  "tracestate",
];
const AllowHeaderSet = new Set(AllowHeaders.map((h) => h.toLowerCase()));
export const ExposeHeaders = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version";
const LoopbackOrigin = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/;

/** Returns a predicate telling whether a browser Origin is allowed (exact origin match). */
export function createOriginPolicy(
  config: Pick<Config, "allowedOrigins" | "resourceUri">,
): (origin: string) => boolean {
  if (config.allowedOrigins === null) {
    const own = new URL(config.resourceUri).origin;
    return (origin) => origin === own || LoopbackOrigin.test(origin);
  }
  if (config.allowedOrigins.includes("*")) return () => true;
  const set = new Set(config.allowedOrigins);
  return (origin) => set.has(origin);
}

/**
 * Allow-Headers for a preflight: the MCP headers, plus any requested `Mcp-Param-*`
 * (a prefix CORS cannot express).
 */
export function allowHeadersFor(requested: string | null): string {
  if (!requested) return AllowHeaders.join(", ");
  const extra = requested.split(",").map((h) => h.trim()).filter((h) => {
    const l = h.toLowerCase();
    return l.startsWith("mcp-param-") && !AllowHeaderSet.has(l) && /^[A-Za-z0-9-]+$/.test(h);
  });
  return [...AllowHeaders, ...extra].join(", ");
}

/** Adds the CORS response headers for an allowed origin (any response, 401/403 included). */
export function applyCors(headers: Headers, origin: string): void {
  headers.set("access-control-allow-origin", origin);
  headers.set("access-control-expose-headers", ExposeHeaders);
  headers.append("vary", "Origin");
}
