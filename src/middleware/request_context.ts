/**
 * First in the chain, for every request: the request id, the client's address, the server
 * span, the header-size cap (431); then, once the rest of the chain has answered, security
 * headers, CORS for allowed origins, request metrics and the access-log line.
 */
import type { Config } from "../config.ts";
import type { GatewayMetrics } from "../metrics.ts";
import type { Logger } from "../logging.ts";
import type { Tracer } from "../otel.ts";
import { applyCors } from "../cors.ts";
import { clientAddress, isTrusted } from "../net.ts";
import { errorBody } from "../auth/challenge.ts";
import { type GatewayContext, jsonResponse, type Middleware, type RequestState } from "../context.ts";

const SecurityHeaders: [string, string][] = [
  ["x-content-type-options", "nosniff"],
  ["x-frame-options", "DENY"],
  ["referrer-policy", "no-referrer"],
  ["content-security-policy", "default-src 'none'"],
];
const RequestId = /^[A-Za-z0-9._:-]{1,128}$/;

export interface RequestContextDeps {
  log: Logger;
  metrics: GatewayMetrics | undefined;
  tracer: Tracer | undefined;
  isAllowedOrigin: (origin: string) => boolean;
}

/** Health probes: never limited, logged at debug. */
export function isProbe(path: string): boolean {
  return path === "/healthz" || path === "/readyz";
}

function newState(c: GatewayContext, config: Config, start: number): RequestState {
  const req = c.req.raw;
  const incomingId = req.headers.get("x-request-id");
  const peer = c.env?.remoteAddr ?? "";
  const trustedPeer = isTrusted(peer, config.trustedProxies);
  // The raw path and query of the (already normalised) request URL, without `new URL`.
  let url = req.url;
  const hash = url.indexOf("#");
  if (hash !== -1) url = url.slice(0, hash);
  const pathStart = url.indexOf("/", url.indexOf("//") + 2);
  const queryStart = url.indexOf("?", pathStart);
  return {
    start,
    requestId: incomingId !== null && RequestId.test(incomingId) ? incomingId : crypto.randomUUID(),
    peer,
    clientIp: trustedPeer ? clientAddress(peer, req.headers, config.trustedProxies) : peer,
    trustedPeer,
    path: queryStart === -1 ? url.slice(pathStart) : url.slice(pathStart, queryStart),
    search: queryStart === -1 ? "" : url.slice(queryStart),
    span: undefined,
    token: undefined,
    identity: undefined,
    body: undefined,
    ruleScopes: undefined,
    mcpMethod: undefined,
    mcpName: undefined,
    reason: undefined,
    hint: undefined,
    proxied: false,
    endOfExchange: undefined,
  };
}

function headerBytes(headers: Headers): number {
  let n = 0;
  headers.forEach((v, k) => {
    n += k.length + v.length + 4;
  });
  return n;
}

export function requestContext(config: Config, deps: RequestContextDeps): Middleware {
  const { log, metrics, tracer, isAllowedOrigin } = deps;

  const finish = (c: GatewayContext, state: RequestState) => {
    const req = c.req.raw;
    const res = c.res;
    if (!state.proxied) { for (const [k, v] of SecurityHeaders) res.headers.set(k, v); }
    // CORS on every response to an allowed origin, errors included, so that a browser
    // client can read the challenge; the gateway's policy overrides the upstream's.
    const origin = req.headers.get("origin");
    if (origin !== null && !res.headers.has("access-control-allow-origin") && isAllowedOrigin(origin)) {
      applyCors(res.headers, origin);
    }
    res.headers.set("x-request-id", state.requestId);
    const status = res.status;
    metrics?.requestFinished();
    metrics?.requestDone(req.method, status, (performance.now() - state.start) / 1000);
    const span = state.span;
    if (span) {
      span.setAttribute("http.response.status_code", status);
      if (status >= 500) span.setStatus("error");
      span.end();
    }
    const level = isProbe(state.path)
      ? "debug"
      : state.reason === "client_closed"
      ? "info"
      : status >= 500
      ? "error"
      : status >= 400
      ? "warn"
      : "info";
    if (log.enabled(level)) log.log(level, "request", accessLogFields(req, state, status));
  };

  return async function requestContextMiddleware(c, next) {
    const state = newState(c, config, performance.now());
    c.set("state", state);
    const req = c.req.raw;
    metrics?.requestStarted();
    if (tracer) {
      state.span = tracer.startSpan(`${req.method} ${state.path}`, {
        parent: tracer.extract(req.headers),
        kind: "server",
        attributes: {
          "http.request.method": req.method,
          "url.path": state.path,
          "client.address": state.clientIp,
          "user_agent.original": req.headers.get("user-agent") ?? undefined,
        },
      });
    }
    if (headerBytes(req.headers) > config.maxHeaderBytes) {
      state.reason = "headers_too_large";
      c.res = jsonResponse(
        431,
        errorBody("request_header_fields_too_large", `Request headers exceed ${config.maxHeaderBytes} bytes`),
      );
    } else {
      await next();
    }
    finish(c, state);
  };
}

/** The access-log line's fields; MCP fields come from the body (SCOPE_RULES) or the client's headers. */
function accessLogFields(req: Request, state: RequestState, status: number): Record<string, unknown> {
  return {
    method: req.method,
    path: state.path,
    status,
    duration_ms: Math.round((performance.now() - state.start) * 100) / 100,
    client_ip: state.clientIp,
    user_agent: req.headers.get("user-agent") ?? "",
    request_id: state.requestId,
    sub: state.identity?.subject,
    mcp_method: state.mcpMethod ?? req.headers.get("mcp-method") ?? undefined,
    mcp_name: state.mcpName ?? req.headers.get("mcp-name") ?? undefined,
    reason: state.reason,
    hint: state.hint,
  };
}
