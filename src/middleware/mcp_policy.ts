/**
 * SCOPE_RULES: reads the request body (after authentication, never before), classifies it
 * as one JSON-RPC message or a batch, checks the Mcp-Method / Mcp-Name headers against it,
 * and finds the scopes its calls need (state.ruleScopes, checked by authorize()). The exact
 * bytes read go to the upstream (state.body). Registered only when SCOPE_RULES is set:
 * without it no body is ever read.
 *
 * A body it cannot classify, or whose headers disagree with it, is answered here with 400
 * and a JSON-RPC error object, and never forwarded.
 */
import type { Config } from "../config.ts";
import type { GatewayMetrics } from "../metrics.ts";
import { jsonResponse, type Middleware, type RequestState } from "../context.ts";
import { readBody } from "../proxy/read_body.ts";
import { classifyBody, jsonRpcErrorBody, type JsonRpcId, type McpMessage } from "../policy/jsonrpc.ts";
import { headerMismatch } from "../policy/header_value.ts";
import { RuleTable } from "../policy/rules.ts";

/** JSON-RPC error code of MCP 2026-07-28 for a request metadata header that disagrees with the body. */
export const HeaderMismatchCode = -32020;
/** Methods that carry no body: they need REQUIRED_SCOPES only. */
const Bodiless = new Set(["GET", "HEAD", "OPTIONS", "DELETE"]);
/** Bounds on what one access-log line carries of a body. */
const MaxLoggedText = 256;
const MaxLoggedMethods = 32;

function refuse(state: RequestState, reason: string, id: JsonRpcId, code: number, message: string): Response {
  state.reason = reason;
  state.hint = message;
  return jsonResponse(400, jsonRpcErrorBody(id, code, message));
}

function announcesBody(headers: Headers): boolean {
  const length = headers.get("content-length");
  return (length !== null && length !== "0") || headers.has("transfer-encoding");
}

const clip = (s: string) => (s.length > MaxLoggedText ? s.slice(0, MaxLoggedText) : s);

/** mcp_method (a string; for a batch the array of methods) and mcp_name for the access log. */
function logFields(state: RequestState, batch: boolean, messages: readonly McpMessage[]): void {
  if (batch) {
    const methods: string[] = [];
    for (const m of messages) {
      if (m.method !== undefined && methods.length < MaxLoggedMethods) methods.push(clip(m.method));
    }
    state.mcpMethod = methods;
  } else if (messages[0]!.method !== undefined) {
    state.mcpMethod = clip(messages[0]!.method);
  }
  const named = messages.find((m) => m.name !== undefined);
  if (named !== undefined) state.mcpName = clip(named.name!);
}

export function mcpPolicy(
  config: Pick<Config, "scopeRules" | "maxRequestBody" | "readTimeoutMs">,
  metrics: GatewayMetrics | undefined,
): Middleware {
  const table = new RuleTable(config.scopeRules ?? []);
  const { maxRequestBody, readTimeoutMs } = config;

  return async function mcpPolicyMiddleware(c, next) {
    const req = c.req.raw;
    const state = c.get("state");
    if (Bodiless.has(req.method)) {
      // A body here would reach the upstream unclassified: refused rather than passed on.
      if (req.method === "DELETE" && announcesBody(req.headers)) {
        return refuse(state, "body_not_allowed", null, -32600, "Invalid Request: a DELETE request carries no body");
      }
      return await next();
    }
    const body = await readBody(req, maxRequestBody, readTimeoutMs);
    state.body = body;
    const classified = classifyBody(body);
    if (!classified.ok) {
      for (const m of classified.methods) metrics?.mcpMessage(m, "invalid");
      const { code, id, message } = classified.error;
      return refuse(state, code === -32700 ? "jsonrpc_parse_error" : "jsonrpc_invalid", id, code, message);
    }
    const { batch, messages } = classified;
    const mismatch = headerMismatch(req.headers, messages);
    if (mismatch !== undefined) {
      for (const m of messages) metrics?.mcpMessage(m.method, "invalid");
      const message = `Header mismatch: the ${mismatch.header} header does not match the body`;
      return refuse(state, "header_mismatch", mismatch.id, HeaderMismatchCode, message);
    }
    logFields(state, batch, messages);
    state.ruleScopes = table.scopesForAll(messages);
    await next();
    const outcome = state.reason === "insufficient_scope" ? "denied" : "allowed";
    for (const m of messages) metrics?.mcpMessage(m.method, outcome);
  };
}
