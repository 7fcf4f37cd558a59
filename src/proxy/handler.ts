/**
 * Last in the chain: the upstream request's headers (hygiene, X-Forwarded-*, verified
 * identity), the target URL, and the exchange itself, streamed both ways. A body that a
 * middleware already read whole (state.body) is sent as those exact bytes.
 */
import type { Handler } from "hono";
import type { Config } from "../config.ts";
import type { GatewayMetrics } from "../metrics.ts";
import type { Tracer } from "../otel.ts";
import type { Identity } from "../auth/identity.ts";
import { RequestError, UpstreamError } from "../errors.ts";
import type { GatewayEnv, RequestState } from "../context.ts";
import { forward, stripAccessToken, upstreamTarget } from "./forward.ts";
import type { Logger } from "../logging.ts";
import { type HeaderRecord, requestHeaderFilter, type UpstreamIdentity, upstreamRequestHeaders } from "./headers.ts";

export interface ProxyDeps {
  fetch: typeof fetch;
  /** Awaited before each upstream fetch (forward.ts beforeFetch). */
  beforeFetch: (() => Promise<void>) | undefined;
  metrics: GatewayMetrics | undefined;
  tracer: Tracer | undefined;
  /** Lifts the runtime's idle timeout for a proxied (possibly long-lived) request. */
  disableTimeouts: ((req: Request) => void) | undefined;
  primeEventStreams: boolean;
  /** At debug: the names of client-sent identity headers dropped. */
  log?: Logger | undefined;
}

function claimValue(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** Builds the upstream request's headers from the client's, the connection and the verified identity. */
function upstreamHeaders(
  config: Config,
  log: Logger | undefined,
): (req: Request, state: RequestState) => HeaderRecord {
  const claimHeaders = config.claimHeaders;
  const filter = requestHeaderFilter(claimHeaders.map(([, h]) => h), config.stripRequestHeaders);
  const debug = log?.enabled("debug") ? log : undefined;
  const upstreamIdentity = (identity: Identity): UpstreamIdentity | null =>
    config.identityHeaders
      ? {
        sub: identity.subject,
        scopes: identity.scopes,
        clientId: identity.clientId,
        extra: claimHeaders.flatMap(([claim, header]) => {
          const v = identity.claims[claim];
          return v === undefined ? [] : [[header, claimValue(v)] as const];
        }),
      }
      : null;

  return (req, state) => {
    const trustedPeer = state.trustedPeer;
    const url = req.url;
    const headers = upstreamRequestHeaders(
      req.headers,
      upstreamIdentity(state.identity!),
      {
        peer: state.peer,
        proto: (trustedPeer && req.headers.get("x-forwarded-proto")) || url.slice(0, url.indexOf(":")),
        host: (trustedPeer && req.headers.get("x-forwarded-host")) || (req.headers.get("host") ?? new URL(url).host),
        priorForwardedFor: trustedPeer ? req.headers.get("x-forwarded-for") : null,
      },
      filter,
      config.forwardToken ? state.token! : null,
      debug &&
        ((names) => debug.debug("client identity headers stripped", { headers: names, request_id: state.requestId })),
    );
    headers["x-request-id"] = state.requestId;
    return headers;
  };
}

export function proxy(config: Config, deps: ProxyDeps): Handler<GatewayEnv> {
  const { metrics, tracer } = deps;
  const headersFor = upstreamHeaders(config, deps.log);

  return async function proxyHandler(c) {
    const req = c.req.raw;
    const state = c.get("state");
    const contentLength = req.headers.get("content-length");
    if (state.body === undefined && contentLength !== null && Number(contentLength) > config.maxRequestBody) {
      throw new RequestError("body_too_large", 413, `Request body exceeds ${config.maxRequestBody} bytes`);
    }
    const headers = headersFor(req, state);
    deps.disableTimeouts?.(req);
    const target = upstreamTarget(config.upstreamUrl, state.path, stripAccessToken(state.search));
    const upstreamSpan = state.span && tracer!.startSpan("upstream", {
      parent: state.span,
      kind: "client",
      attributes: {
        "http.request.method": req.method,
        "url.full": upstreamTarget(config.upstreamUrl, state.path, ""),
      },
    });
    if (upstreamSpan) {
      tracer!.inject(upstreamSpan, {
        set: (name, value) => void (headers[name] = value),
        delete: (name) => void delete headers[name],
      });
    }
    const sent = performance.now();
    let res: Response;
    try {
      res = await forward(req, target, headers, {
        fetch: deps.fetch,
        beforeFetch: deps.beforeFetch,
        timeoutMs: config.upstreamTimeoutMs,
        maxRequestBody: config.maxRequestBody,
        readTimeoutMs: config.readTimeoutMs,
        primeEventStream: deps.primeEventStreams,
        onEnd: state.endOfExchange,
        body: state.body,
      });
      metrics?.proxyDone(res.status, (performance.now() - sent) / 1000);
      upstreamSpan?.setAttribute("http.response.status_code", res.status);
      if (res.status >= 500) upstreamSpan?.setStatus("error");
    } catch (e) {
      metrics?.proxyDone("error", (performance.now() - sent) / 1000);
      upstreamSpan?.setAttribute(
        "error.type",
        e instanceof UpstreamError || e instanceof RequestError ? e.code : "error",
      );
      upstreamSpan?.setStatus("error", e instanceof Error ? e.message : String(e));
      throw e;
    } finally {
      upstreamSpan?.end();
    }
    state.proxied = true;
    return res;
  };
}
