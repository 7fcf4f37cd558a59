/**
 * The gateway as a portable Hono app over Web-standard Request/Response.
 *
 * Public: OPTIONS preflights, the metadata document, /healthz, /readyz. Everything else —
 * any path, any method — passes the Origin check, then the token check, then goes to the
 * upstream. Public routes are answered by the gateway itself and never forwarded, so no
 * path trick can turn a public route into an unauthenticated upstream request.
 */
import { Hono } from "hono";
import { AuthError, RequestError, UpstreamError } from "./errors.ts";
import type { Config } from "./config.ts";
import { allowHeadersFor, AllowMethods, applyCors, createOriginPolicy } from "./cors.ts";
import { createLogger, type Logger } from "./logging.ts";
import { clientAddress, isTrusted } from "./net.ts";
import { buildChallenge, errorBody } from "./auth/challenge.ts";
import { extractToken } from "./auth/extract_token.ts";
import { KeySet } from "./auth/key_set.ts";
import { missingScopes } from "./auth/scope.ts";
import { TokenCache } from "./auth/token_cache.ts";
import { TokenVerifier, type VerifiedToken } from "./auth/verify_token.ts";
import { metadataResponder } from "./routes/metadata.ts";
import { healthz, readyz } from "./routes/health.ts";
import { forward, stripAccessToken, upstreamTarget } from "./proxy/forward.ts";
import { upstreamRequestHeaders } from "./proxy/headers.ts";
import { ConcurrencyLimiter, RateLimiter } from "./limits.ts";
import { authOutcomeFor, type GatewayMetrics } from "./metrics.ts";
import type { Span, Tracer } from "./otel.ts";

export interface GatewayDeps {
  /** The fetch used for the upstream, JWKS and discovery (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Milliseconds since the epoch (default: Date.now). */
  now?: () => number;
  log?: Logger;
  /** Called before a request is proxied: lifts the runtime's idle timeout for it. */
  disableTimeouts?: (req: Request) => void;
  /** The runtime sends no response headers before the first body chunk (Bun): prime event streams. */
  primeEventStreams?: boolean;
  /** Prometheus metrics (METRICS_ADDR); undefined: none recorded. */
  metrics?: GatewayMetrics | undefined;
  /** Tracer (OTEL_EXPORTER_OTLP_ENDPOINT), loaded by the caller with import(); undefined: no tracing. */
  tracer?: Tracer | undefined;
}

/** What the runtime knows about the connection. */
export interface ConnInfo {
  remoteAddr?: string;
}

type Env = {
  Bindings: ConnInfo;
  Variables: {
    requestId: string;
    clientIp: string;
    trustedPeer: boolean;
    sub: string | undefined;
    reason: string | undefined;
    hint: string | undefined;
    proxied: boolean;
    span: Span | undefined;
    endOfExchange: (() => void) | undefined;
  };
};

export interface Gateway {
  /** Web-standard fetch handler. */
  fetch(req: Request, conn?: ConnInfo): Response | Promise<Response>;
  readonly app: Hono<Env>;
  /** Starts loading keys; resolves once every key set loaded (retrying until then). */
  start(): Promise<void>;
  readonly ready: boolean;
  /** Stops background retries. */
  close(): void;
}

const SecurityHeaders: [string, string][] = [
  ["x-content-type-options", "nosniff"],
  ["x-frame-options", "DENY"],
  ["referrer-policy", "no-referrer"],
  ["content-security-policy", "default-src 'none'"],
];
const RequestId = /^[A-Za-z0-9._:-]{1,128}$/;
/** OAuth discovery probes that are not ours to answer: 404 without authentication. */
const ForeignDiscovery =
  /^\/\.well-known\/(oauth-protected-resource|oauth-authorization-server|openid-configuration)(\/|$)/;

function json(status: number, body: string, extra?: Record<string, string>): Response {
  return new Response(body, { status, headers: { "content-type": "application/json", ...extra } });
}

export function createGateway(config: Config, deps: GatewayDeps = {}): Gateway {
  const fetchFn = deps.fetch ?? globalThis.fetch.bind(globalThis);
  const now = deps.now ?? Date.now;
  const log = deps.log ?? createLogger(config.logLevel);
  const metrics = deps.metrics;
  const tracer = deps.tracer;
  const rateLimiter = new RateLimiter({ rps: config.rateLimitRps, burst: config.rateLimitBurst, now });
  const concurrency = new ConcurrencyLimiter(config.maxConcurrentRequests, config.maxTotalConnections);

  const keySetOptions = {
    fetch: fetchFn,
    now,
    log,
    refreshIntervalMs: config.jwksRefreshIntervalMs,
    cooldownMs: config.jwksRefetchCooldownMs,
    timeoutMs: config.jwksFetchTimeoutMs,
  };
  const newKeySet = (issuer: string, jwksUri: string | undefined): KeySet => {
    const keySet: KeySet = new KeySet({
      ...keySetOptions,
      issuer,
      jwksUri,
      ...(metrics
        ? { onFetch: (outcome, keys) => metrics.jwksFetch(outcome === "ok", keys, issuer, keySet.version, now()) }
        : {}),
    });
    return keySet;
  };
  const keySets: KeySet[] = config.jwksUri !== undefined
    ? [newKeySet(config.authorizationServers[0]!, config.jwksUri)]
    : config.authorizationServers.map((issuer) => newKeySet(issuer, undefined));
  const byIssuer = new Map(keySets.map((k) => [k.issuer, k]));
  const verifier = new TokenVerifier({
    config,
    keysFor: (iss) => byIssuer.get(iss) ?? keySets[0]!,
    keyVersion: () => keySets.reduce((sum, k) => sum + k.version, 0),
    now,
    cache: config.tokenCacheSize > 0
      ? new TokenCache({
        maxEntries: config.tokenCacheSize,
        maxBytes: 64 * 1024 * 1024,
        ttlCapMs: 10 * 60_000,
        negativeTtlMs: 60_000,
        negativeMaxEntries: 1024,
        skewMs: config.clockSkewSeconds * 1000,
        now,
      })
      : undefined,
  });

  const isAllowedOrigin = createOriginPolicy(config);
  const metadata = metadataResponder(config);
  const metadataPaths = new Set(config.metadataPaths);
  const challengeScopes = config.scopesSupported;
  const identityExtraHeaders = config.claimHeaders.map(([, h]) => h.toLowerCase());

  const authResponse = (e: AuthError): Response => {
    if (e.code === "origin_not_allowed") return json(403, errorBody("forbidden", e.description));
    if (e.status === 503) {
      return json(503, errorBody("temporarily_unavailable", e.description), { "retry-after": "5" });
    }
    const scopes = e.code === "insufficient_scope" ? config.requiredScopes : challengeScopes;
    const challenge = buildChallenge({
      resourceMetadataUrl: config.resourceMetadataUrl,
      scopes,
      error: e.bearerError,
      description: e.description,
    });
    return json(e.status, errorBody(e.bearerError || "unauthorized", e.description), {
      "www-authenticate": challenge,
    });
  };

  const app = new Hono<Env>();

  // Access log, request id, security headers and the header-size cap, for every request.
  app.use(async (c, next) => {
    const start = performance.now();
    const req = c.req.raw;
    const incomingId = req.headers.get("x-request-id");
    const requestId = incomingId !== null && RequestId.test(incomingId) ? incomingId : crypto.randomUUID();
    c.set("requestId", requestId);
    const peer = c.env?.remoteAddr ?? "";
    const trustedPeer = isTrusted(peer, config.trustedProxies);
    c.set("trustedPeer", trustedPeer);
    const clientIp = trustedPeer ? clientAddress(peer, req.headers, config.trustedProxies) : peer;
    c.set("clientIp", clientIp);
    c.set("proxied", false);
    metrics?.requestStarted();
    const span = tracer?.startSpan(`${req.method} ${c.req.path}`, {
      parent: tracer.extract(req.headers),
      kind: "server",
      attributes: {
        "http.request.method": req.method,
        "url.path": c.req.path,
        "client.address": clientIp,
        "user_agent.original": req.headers.get("user-agent") ?? undefined,
      },
    });
    c.set("span", span);

    let headerBytes = 0;
    req.headers.forEach((v, k) => {
      headerBytes += k.length + v.length + 4;
    });
    const probe = c.req.path === "/healthz" || c.req.path === "/readyz";
    if (headerBytes > config.maxHeaderBytes) {
      c.set("reason", "headers_too_large");
      c.res = json(
        431,
        errorBody("request_header_fields_too_large", `Request headers exceed ${config.maxHeaderBytes} bytes`),
      );
    } else if (probe) {
      await next();
    } else {
      // Limits come before any work: 429 for this client's rate or in-flight cap, 503 for the total.
      const retryAfter = rateLimiter.take(clientIp);
      const slot = retryAfter === 0 ? concurrency.acquire(clientIp) : undefined;
      if (retryAfter > 0) {
        metrics?.rateLimited();
        c.set("reason", "rate_limited");
        c.res = json(429, errorBody("rate_limited", `Too many requests; retry after ${retryAfter} s`), {
          "retry-after": String(retryAfter),
        });
      } else if (slot === "per_client") {
        metrics?.concurrentLimited("per_client");
        c.set("reason", "too_many_concurrent_requests");
        c.res = json(429, errorBody("rate_limited", "Too many requests in flight from this client"), {
          "retry-after": "1",
        });
      } else if (slot === "total") {
        metrics?.concurrentLimited("total");
        c.set("reason", "too_many_connections");
        c.res = json(503, errorBody("temporarily_unavailable", "The gateway is at its connection limit"), {
          "retry-after": "1",
        });
      } else if (slot !== undefined) {
        const release = slot;
        // A proxied exchange holds its slot until its response body ends (a stream, for
        // its whole life: forward() calls endOfExchange); the gateway's own answers are
        // complete when returned, so they free it here.
        let freed = false;
        const free = () => {
          if (freed) return;
          freed = true;
          release();
          metrics?.connectionClosed();
        };
        c.set("endOfExchange", free);
        metrics?.connectionOpened();
        await next();
        if (!c.get("proxied")) free();
      }
    }

    const res = c.res;
    if (!c.get("proxied")) { for (const [k, v] of SecurityHeaders) res.headers.set(k, v); }
    // CORS on every response to an allowed origin, errors included, so that a browser
    // client can read the challenge; the gateway's policy overrides the upstream's.
    const origin = req.headers.get("origin");
    if (origin !== null && !res.headers.has("access-control-allow-origin") && isAllowedOrigin(origin)) {
      applyCors(res.headers, origin);
    }
    res.headers.set("x-request-id", requestId);
    const status = res.status;
    metrics?.requestFinished();
    metrics?.requestDone(req.method, status, (performance.now() - start) / 1000);
    if (span) {
      span.setAttribute("http.response.status_code", status);
      if (status >= 500) span.setStatus("error");
      span.end();
    }
    const level = probe
      ? "debug"
      : c.get("reason") === "client_closed"
      ? "info"
      : status >= 500
      ? "error"
      : status >= 400
      ? "warn"
      : "info";
    if (log.enabled(level)) {
      log.log(level, "request", {
        method: req.method,
        path: c.req.path,
        status,
        duration_ms: Math.round((performance.now() - start) * 100) / 100,
        client_ip: c.get("clientIp"),
        user_agent: req.headers.get("user-agent") ?? "",
        request_id: requestId,
        sub: c.get("sub"),
        reason: c.get("reason"),
        hint: c.get("hint"),
      });
    }
  });

  app.onError((err, c) => {
    if (err instanceof AuthError) {
      if (err.code !== "origin_not_allowed") metrics?.authOutcome(authOutcomeFor(err.code, err.status), err.code);
      c.set("reason", err.code);
      c.set("hint", err.hint);
      return authResponse(err);
    }
    if (err instanceof RequestError) {
      c.set("reason", err.code);
      return json(err.status, errorBody(err.code, err.message), { connection: "close" });
    }
    if (err instanceof UpstreamError) {
      c.set("reason", err.code);
      c.set("hint", err.cause instanceof Error ? err.cause.message : undefined);
      return json(err.status, errorBody(err.code, err.message));
    }
    c.set("reason", "internal_error");
    log.error("unhandled error", { error: err instanceof Error ? err.stack ?? err.message : String(err) });
    return json(500, errorBody("internal_error", "The gateway failed to handle the request"));
  });

  // Preflights on every path: answered here, never authenticated, never forwarded.
  app.options("*", (c) => {
    const origin = c.req.header("origin");
    const headers = new Headers({ allow: AllowMethods });
    if (origin !== undefined) {
      const publicPath = metadataPaths.has(c.req.path);
      if (!publicPath && !isAllowedOrigin(origin)) {
        throw new AuthError("origin_not_allowed", 403, "", `Origin ${origin} is not allowed`);
      }
      applyCors(headers, publicPath ? "*" : origin);
      headers.set("access-control-allow-methods", AllowMethods);
      headers.set(
        "access-control-allow-headers",
        allowHeadersFor(c.req.header("access-control-request-headers") ?? null),
      );
      headers.set("access-control-max-age", "86400");
    }
    return new Response(null, { status: 204, headers });
  });

  for (const path of metadataPaths) {
    app.all(path, (c) => {
      const method = c.req.raw.method;
      if (method !== "GET" && method !== "HEAD") {
        return json(405, errorBody("method_not_allowed", "Use GET or HEAD"), { allow: "GET, HEAD, OPTIONS" });
      }
      return metadata(method);
    });
  }
  app.all("/healthz", () => healthz());
  app.all("/readyz", () => readyz(gateway.ready));

  // Everything else: Origin check, token, scope, then the upstream.
  app.all("*", async (c) => {
    const req = c.req.raw;
    const origin = req.headers.get("origin");
    if (origin !== null && !isAllowedOrigin(origin)) {
      throw new AuthError("origin_not_allowed", 403, "", `Origin ${origin} is not allowed`);
    }
    const url = new URL(req.url);
    if (ForeignDiscovery.test(url.pathname)) {
      // Clients probe other resources' metadata, or AS metadata at the resource's origin
      // (2025-03-26 clients): a 404 lets them fall back; a 401 would send them in circles.
      c.set("reason", "no_such_metadata");
      return json(404, errorBody("not_found", `No metadata here; see ${config.resourceMetadataUrl}`));
    }
    const contentLength = req.headers.get("content-length");
    if (contentLength !== null && Number(contentLength) > config.maxRequestBody) {
      throw new RequestError("body_too_large", 413, `Request body exceeds ${config.maxRequestBody} bytes`);
    }

    const span = c.get("span");
    const authSpan = span && tracer!.startSpan("auth.verify", { parent: span });
    let token: string;
    let verified: VerifiedToken;
    try {
      token = extractToken(req.headers.get("authorization"), url.search);
      verified = await verifier.verify(token);
      c.set("sub", verified.sub);
      authSpan?.setAttribute("enduser.id", verified.sub);
      const missing = missingScopes(verified.scopes, config.requiredScopes);
      if (missing.length > 0) {
        throw new AuthError(
          "insufficient_scope",
          403,
          "insufficient_scope",
          `The token lacks the required scope ${missing.join(" ")}`,
          {
            hint: `token scopes: ${verified.scopes.join(" ") || "(none)"}`,
          },
        );
      }
      metrics?.authOutcome("valid", "ok");
      authSpan?.setAttributes({ "auth.outcome": "valid", "auth.reason": "ok" });
    } catch (e) {
      if (authSpan && e instanceof AuthError) {
        authSpan.setAttributes({ "auth.outcome": authOutcomeFor(e.code, e.status), "auth.reason": e.code });
        authSpan.setStatus("error", e.code);
      }
      throw e;
    } finally {
      authSpan?.end();
    }

    const trustedPeer = c.get("trustedPeer");
    const headers = upstreamRequestHeaders(
      req.headers,
      config.identityHeaders
        ? {
          sub: verified.sub,
          scopes: verified.scopes,
          clientId: verified.clientId,
          extra: config.claimHeaders.flatMap(([claim, header]) => {
            const v = verified.payload[claim];
            return v === undefined ? [] : [[header, typeof v === "string" ? v : JSON.stringify(v)] as const];
          }),
        }
        : null,
      {
        peer: c.env?.remoteAddr ?? "",
        proto: (trustedPeer && req.headers.get("x-forwarded-proto")) || url.protocol.slice(0, -1),
        host: (trustedPeer && req.headers.get("x-forwarded-host")) || (req.headers.get("host") ?? url.host),
        priorForwardedFor: trustedPeer ? req.headers.get("x-forwarded-for") : null,
      },
      identityExtraHeaders,
      config.forwardToken ? token : null,
    );
    headers.set("x-request-id", c.get("requestId"));

    deps.disableTimeouts?.(req);
    const target = upstreamTarget(config.upstreamUrl, url.pathname, stripAccessToken(url.search));
    const upstreamSpan = span && tracer!.startSpan("upstream", {
      parent: span,
      kind: "client",
      attributes: {
        "http.request.method": req.method,
        "url.full": upstreamTarget(config.upstreamUrl, url.pathname, ""),
      },
    });
    if (upstreamSpan) tracer!.inject(upstreamSpan, headers);
    const sent = performance.now();
    let res: Response;
    try {
      res = await forward(req, target, headers, {
        fetch: fetchFn,
        timeoutMs: config.upstreamTimeoutMs,
        maxRequestBody: config.maxRequestBody,
        readTimeoutMs: config.readTimeoutMs,
        primeEventStream: deps.primeEventStreams ?? false,
        onEnd: c.get("endOfExchange"),
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
    c.set("proxied", true);
    return res;
  });

  let closed = false;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const loadWithRetry = async (keys: KeySet) => {
    for (let attempt = 0; !closed; attempt++) {
      try {
        await keys.load();
        const methods = keys.metadata?.code_challenge_methods_supported;
        if (keys.metadata && (!Array.isArray(methods) || !methods.includes("S256"))) {
          log.warn("authorization server does not list S256 in code_challenge_methods_supported", {
            issuer: keys.issuer,
            hint: "MCP clients require PKCE with S256 and may refuse this server",
          });
        }
        return;
      } catch {
        await sleep(Math.min(30_000, 500 * 2 ** attempt));
      }
    }
  };

  const gateway: Gateway = {
    app,
    fetch: (req, conn) => app.fetch(req, conn ?? {}),
    start: async () => {
      await Promise.all(keySets.map(loadWithRetry));
    },
    get ready() {
      return keySets.every((k) => k.ready);
    },
    close: () => {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
  return gateway;
}
