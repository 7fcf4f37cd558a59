/**
 * The one typed object that travels with a request through the middleware chain: who the
 * client is, what the token said, what the MCP call is, and what the access log should
 * say. Set once by requestContext(), read and filled by the middleware after it.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Identity } from "./auth/identity.ts";
import type { Span } from "./otel.ts";

/** What the runtime knows about the connection. */
export interface ConnInfo {
  remoteAddr?: string;
}

export interface RequestState {
  /** performance.now() when the request arrived. */
  readonly start: number;
  readonly requestId: string;
  /** The socket peer. */
  readonly peer: string;
  /** The client's address: the peer, or what a trusted proxy said. */
  readonly clientIp: string;
  readonly trustedPeer: boolean;
  /** The request URL's path and query (raw, as sent). */
  readonly path: string;
  readonly search: string;
  span: Span | undefined;
  /** The bearer credential, once extracted (never logged). */
  token: string | undefined;
  /** Set by authenticate() once the token verified. */
  identity: Identity | undefined;
  /**
   * The request body, when a middleware had to read it whole (SCOPE_RULES): forwarded byte
   * for byte instead of the (consumed) request stream.
   */
  body: Uint8Array<ArrayBuffer> | undefined;
  /** Scopes the MCP call(s) in the body need beyond REQUIRED_SCOPES (SCOPE_RULES); undefined: none. */
  ruleScopes: readonly string[] | undefined;
  /** For the access log: the JSON-RPC method(s) and tool/prompt name or resource URI. */
  mcpMethod: string | string[] | undefined;
  mcpName: string | undefined;
  /** Stable reason code and near-miss hint for the access log. */
  reason: string | undefined;
  hint: string | undefined;
  /** The response came from the upstream (not made by the gateway). */
  proxied: boolean;
  /** Frees the request's concurrency slot; called by the proxy when the exchange ends. */
  endOfExchange: (() => void) | undefined;
}

export type GatewayEnv = {
  Bindings: ConnInfo;
  Variables: { state: RequestState };
};

export type GatewayContext = Context<GatewayEnv>;
export type Middleware = MiddlewareHandler<GatewayEnv>;

export function jsonResponse(status: number, body: string, extra?: Record<string, string>): Response {
  return new Response(body, { status, headers: { "content-type": "application/json", ...extra } });
}
