/**
 * The gateway as a portable Hono app over Web-standard Request/Response.
 *
 * Public: OPTIONS preflights, the metadata document, /healthz, /readyz. Everything else —
 * any path, any method — passes the Origin check, then the token check, then goes to the
 * upstream. Public routes are answered by the gateway itself and never forwarded, so no
 * path trick can turn a public route into an unauthenticated upstream request.
 *
 * The request path is the list of middleware below, in order; each does one job and
 * lives in its own file. A new capability is a new entry in that list.
 */
import { Hono } from "hono";
import type { Config } from "./config.ts";
import { createOriginPolicy } from "./cors.ts";
import { createLogger, type Logger } from "./logging.ts";
import type { Service } from "./auth/identity.ts";
import type { TokenDigest } from "./auth/digest.ts";
import type { SignatureCheck } from "./auth/signature.ts";
import { createJwtVerifier } from "./auth/jwt_verifier.ts";
import { createIntrospectionVerifier } from "./auth/introspection.ts";
import { metadataResponder } from "./routes/metadata.ts";
import { healthz, readyz } from "./routes/health.ts";
import { preflight } from "./routes/preflight.ts";
import { foreignDiscovery } from "./routes/foreign_discovery.ts";
import { ConcurrencyLimiter } from "./limits/concurrency.ts";
import type { BucketBackend } from "./limits/shared_bucket.ts";
import { createLimiterStores } from "./limits/stores.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { Tracer } from "./otel.ts";
import { type ConnInfo, type GatewayEnv, jsonResponse } from "./context.ts";
import { requestContext } from "./middleware/request_context.ts";
import { ipLimits } from "./middleware/ip_limits.ts";
import { errorResponse } from "./middleware/error_response.ts";
import { originCheck } from "./middleware/origin_check.ts";
import { authenticate } from "./middleware/authenticate.ts";
import { userLimits } from "./middleware/user_limits.ts";
import { authorize } from "./middleware/authorize.ts";
import { mcpPolicy } from "./middleware/mcp_policy.ts";
import { proxy } from "./proxy/handler.ts";
import { errorBody } from "./auth/challenge.ts";

export type { ConnInfo } from "./context.ts";

export interface GatewayDeps {
  /** The fetch used for the upstream, JWKS and discovery (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /**
   * Awaited before each upstream fetch; the runtime's nextTurn() lets the fetches of one
   * event-loop turn start together (about a quarter more requests per second on Bun).
   */
  beforeFetch?: () => Promise<void>;
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
  /** SHA-256 of a token for the token caches (default: WebCrypto's, asynchronous and slower). */
  digest?: TokenDigest | undefined;
  /** A faster JWS signature check than jose's WebCrypto one (runtime.ts); default: jose's. */
  signatureCheck?: SignatureCheck | undefined;
  /** Redis (REDIS_ADDR / REDIS_URL), connected by the caller with import(); undefined: buckets in memory. */
  rateLimitBackend?: BucketBackend | undefined;
}

export interface Gateway {
  /** Web-standard fetch handler. */
  fetch(req: Request, conn?: ConnInfo): Response | Promise<Response>;
  readonly app: Hono<GatewayEnv>;
  /** Starts loading keys; resolves once every key set loaded (retrying until then). */
  start(): Promise<void>;
  readonly ready: boolean;
  /** Stops background retries. */
  close(): void;
}

export function createGateway(config: Config, deps: GatewayDeps = {}): Gateway {
  const fetchFn = deps.fetch ?? globalThis.fetch.bind(globalThis);
  const now = deps.now ?? Date.now;
  const log = deps.log ?? createLogger(config.logLevel);
  const { metrics, tracer } = deps;

  const limits = createLimiterStores(
    { rps: config.rateLimitRps, burst: config.rateLimitBurst, settings: config.rateLimits },
    { backend: deps.rateLimitBackend, log, onStoreError: metrics && (() => metrics.rateLimitStoreError()), now },
  );
  const concurrency = new ConcurrencyLimiter(config.maxConcurrentRequests, config.maxTotalConnections);
  const { digest, signatureCheck } = deps;
  const jwt = createJwtVerifier(config, { fetch: fetchFn, now, log, metrics, digest, signatureCheck });
  const opaque = createIntrospectionVerifier(config, { fetch: fetchFn, now, log, metrics, digest });
  const services: Service[] = opaque ? [jwt.keys, opaque] : [jwt.keys];
  const isAllowedOrigin = createOriginPolicy(config);
  const metadataPaths = new Set(config.metadataPaths);
  const metadata = metadataResponder(config);

  const app = new Hono<GatewayEnv>();
  app.use(requestContext(config, { log, metrics, tracer, isAllowedOrigin }));
  app.use(ipLimits(limits.ip, concurrency, metrics));
  app.onError(errorResponse(config, log, metrics));

  app.options("*", preflight(metadataPaths, isAllowedOrigin));
  for (const path of metadataPaths) {
    app.all(path, (c) => {
      const method = c.req.raw.method;
      if (method !== "GET" && method !== "HEAD") {
        return jsonResponse(405, errorBody("method_not_allowed", "Use GET or HEAD"), { allow: "GET, HEAD, OPTIONS" });
      }
      return metadata(method);
    });
  }
  app.all("/healthz", () => healthz());
  app.all("/readyz", () => readyz(gateway.ready));

  app.use(originCheck(isAllowedOrigin));
  app.all("/.well-known/*", foreignDiscovery(config.resourceMetadataUrl));
  app.use(authenticate({ jwt: jwt.verifier, opaque }, tracer));
  if (limits.user) app.use(userLimits(limits.user, metrics));
  if (config.scopeRules !== undefined) app.use(mcpPolicy(config, metrics));
  app.use(authorize(config, metrics));
  app.all(
    "*",
    proxy(config, {
      fetch: fetchFn,
      beforeFetch: deps.beforeFetch,
      metrics,
      tracer,
      disableTimeouts: deps.disableTimeouts,
      primeEventStreams: deps.primeEventStreams ?? false,
      log,
    }),
  );

  const gateway: Gateway = {
    app,
    fetch: (req, conn) => app.fetch(req, conn ?? {}),
    start: async () => {
      await Promise.all(services.map((s) => s.start()));
    },
    get ready() {
      return services.every((s) => s.ready);
    },
    close: () => {
      for (const s of services) s.close();
    },
  };
  return gateway;
}
