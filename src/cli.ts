/**
 * Command line: `serve` (default), `healthcheck`, `--version`, `--help`.
 */
import { createGateway } from "./app.ts";
import { type Config, loadConfig, parseListenAddr, Variables } from "./config.ts";
import { ConfigError, formatProblem } from "./errors.ts";
import { createLogger, type Logger } from "./logging.ts";
import { urlHost } from "./net.ts";
import { runCheck } from "./check.ts";
import { GatewayMetrics, metricsHandler } from "./metrics.ts";
import { type RunningServer, type Runtime, runtimeGatewayDeps } from "./runtime.ts";
import { Version } from "./version.ts";

export const Usage = `mcp-gate ${Version}: a stateless OAuth 2.1 gateway for MCP servers

Usage: mcp-gate [command]

Commands:
  serve        run the gateway (default)
  check        check the configuration, the authorization server and the upstream; exit 1 on any problem
  healthcheck  probe /healthz on LISTEN_ADDR; exit 0 when healthy, 1 otherwise
  demo         try it locally: a demo issuer, a sample MCP server and the gateway,
               on loopback only (LISTEN_ADDR default 127.0.0.1:8080); NOT for production
  --version    print the version
  --help       print this help

Configuration is read from environment variables only:
${Variables.map((v) => `  ${v.name.padEnd(28)} ${v.default.padEnd(24)} ${v.meaning}`).join("\n")}
`;

export async function main(rt: Runtime): Promise<void> {
  const [command = "serve", ...rest] = rt.args;
  if (command === "--version" || command === "version") {
    console.log(`mcp-gate ${Version} (${rt.name} ${rt.version})`);
    return;
  }
  if (command === "--help" || command === "-h" || command === "help") {
    console.log(Usage);
    return;
  }
  if (rest.length > 0) {
    console.error(`mcp-gate: unexpected arguments: ${rest.join(" ")}\n\n${Usage}`);
    rt.exit(2);
  }
  switch (command) {
    case "serve":
      return serve(rt);
    case "check":
      return rt.exit(
        await runCheck(rt.env(), {
          fetch: globalThis.fetch.bind(globalThis),
          print: (line) => console.log(line),
          readTextFile: rt.readTextFile,
        }),
      );
    case "healthcheck":
      return rt.exit(await healthcheck(rt.env()));
    case "demo": {
      const { runDemo } = await import("./demo/run.ts");
      return await runDemo(rt);
    }
    default:
      console.error(`mcp-gate: unknown command ${JSON.stringify(command)}\n\n${Usage}`);
      rt.exit(2);
  }
}

/** Probes /healthz on LISTEN_ADDR (a wildcard host means loopback). Returns the exit code. */
export async function healthcheck(env: Record<string, string>): Promise<number> {
  const addr = parseListenAddr(env["LISTEN_ADDR"] || "0.0.0.0:8080");
  if (!addr) {
    console.error(`mcp-gate healthcheck: LISTEN_ADDR ${JSON.stringify(env["LISTEN_ADDR"])} is not host:port`);
    return 1;
  }
  const host = addr.hostname === "0.0.0.0" ? "127.0.0.1" : addr.hostname === "::" ? "::1" : addr.hostname;
  try {
    const res = await fetch(`http://${urlHost(host)}:${addr.port}/healthz`, { signal: AbortSignal.timeout(3000) });
    await res.body?.cancel();
    return res.status === 200 ? 0 : 1;
  } catch {
    return 1;
  }
}

/** One line for a failed bind: the runtimes' errors carry a code and, on Bun, a long stack. */
function listenError(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  if (code === "EADDRINUSE" || (e instanceof Error && e.name === "AddrInUse")) return "the address is already in use";
  if (code === "EACCES" || (e instanceof Error && e.name === "PermissionDenied")) return "permission denied";
  if (code === "EADDRNOTAVAIL" || (e instanceof Error && e.name === "AddrNotAvailable")) {
    return "the address is not available on this machine";
  }
  return e instanceof Error ? e.message.split("\n")[0]! : String(e);
}

function configOrExit(rt: Runtime): Config {
  try {
    return loadConfig(rt.env(), { readTextFile: rt.readTextFile });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    createLogger("error").error("invalid configuration", {
      problems: e.problems.map(formatProblem),
    });
    console.error(`mcp-gate: ${e.message}`);
    return rt.exit(1);
  }
}

/** Fetch slots kept free of proxied requests for key, discovery and trace exports. */
const FetchReserve = 16;

/**
 * When the runtime's fetch still caps concurrent requests below MAX_TOTAL_CONNECTIONS (Bun
 * with a low BUN_CONFIG_MAX_HTTP_REQUESTS set by the operator, or where it could not be
 * raised), the gateway's total cap is lowered to fit, so that requests past it get 503 at
 * once instead of waiting in the runtime's queue until UPSTREAM_TIMEOUT.
 */
function withinFetchCap(rt: Runtime, config: Config, log: Logger): Config {
  const fetches = rt.maxConcurrentFetches;
  if (fetches === undefined) return config;
  const limit = Math.max(1, fetches - FetchReserve);
  const total = config.maxTotalConnections;
  if (total !== 0 && total <= limit) return config;
  log.warn("configuration warning", {
    warning: `${rt.name}'s fetch runs at most ${fetches} upstream requests at once (BUN_CONFIG_MAX_HTTP_REQUESTS ` +
      `${JSON.stringify(rt.env()["BUN_CONFIG_MAX_HTTP_REQUESTS"] ?? null)}), so MAX_TOTAL_CONNECTIONS is lowered ` +
      `from ${total || "unlimited"} to ${limit}: requests past it get 503 at once. Unset ` +
      `BUN_CONFIG_MAX_HTTP_REQUESTS (the gateway then raises it itself) or set it above MAX_TOTAL_CONNECTIONS`,
  });
  return { ...config, maxTotalConnections: limit };
}

async function serve(rt: Runtime): Promise<void> {
  // Before any output: on Bun this may replace the process with one whose fetch cap is raised.
  rt.raiseFetchCap();
  const loaded = configOrExit(rt);
  const log = createLogger(loaded.logLevel);
  const config = withinFetchCap(rt, loaded, log);
  for (const w of config.warnings) log.warn("configuration warning", { warning: w });
  if (rt.maxHeaderBytes !== undefined && rt.maxHeaderBytes < config.maxHeaderBytes) {
    log.warn("configuration warning", {
      warning: `MAX_HEADER_BYTES is ${config.maxHeaderBytes} but ${rt.name} itself answers requests with more ` +
        `than about ${rt.maxHeaderBytes} header bytes with its own 400; the gateway's 431 applies below that`,
    });
  }

  const metrics = config.metricsAddr ? new GatewayMetrics() : undefined;
  metrics?.info(Version, `${rt.name} ${rt.version}`);
  // Loaded only when configured: without OTEL_EXPORTER_OTLP_ENDPOINT none of it is evaluated.
  const tracer = config.otel.endpoint
    ? (await import("./otel.ts")).createTracer(
      { endpoint: config.otel.endpoint, serviceName: config.otel.serviceName, sampleRate: config.otel.sampleRate },
      { fetch: globalThis.fetch.bind(globalThis), log },
    )
    : undefined;
  // The same for Redis (REDIS_ADDR / REDIS_URL): the client library and node:net load only when set.
  const redis = config.rateLimits.redis
    ? (await import("./limits/redis_client.ts")).connectRedis(
      config.rateLimits.redis,
      log,
      config.rateLimits.failClosed,
    )
    : undefined;

  let disable: (req: Request) => void = () => {};
  const gateway = createGateway(config, {
    ...runtimeGatewayDeps(rt),
    log,
    metrics,
    tracer,
    rateLimitBackend: redis,
    disableTimeouts: (req) => disable(req),
  });
  let server: RunningServer;
  try {
    server = rt.serve(gateway.fetch, {
      hostname: config.listen.hostname,
      port: config.listen.port,
      idleTimeoutMs: config.idleTimeoutMs,
      maxHeaderBytes: config.maxHeaderBytes,
    });
  } catch (e) {
    const addr = `${urlHost(config.listen.hostname)}:${config.listen.port}`;
    const why = listenError(e);
    log.error("cannot listen", { addr, error: why });
    console.error(`mcp-gate: LISTEN_ADDR ${JSON.stringify(addr)}: cannot listen: ${why}`);
    return rt.exit(1);
  }
  disable = server.disableTimeouts;
  log.info("listening", {
    url: `http://${urlHost(config.listen.hostname)}:${server.port}`,
    version: Version,
    runtime: `${rt.name} ${rt.version}`,
    resource: config.resourceUri,
    resource_metadata: config.resourceMetadataUrl,
    upstream: config.upstreamUrl.href,
    authorization_servers: config.authorizationServers,
  });
  // As in the Go version, a metrics listener that cannot bind is logged, not fatal.
  let metricsServer: RunningServer | undefined;
  if (metrics && config.metricsAddr) {
    const { hostname, port } = config.metricsAddr;
    try {
      metricsServer = rt.serve(metricsHandler(metrics), {
        hostname,
        port,
        idleTimeoutMs: config.idleTimeoutMs,
        maxHeaderBytes: config.maxHeaderBytes,
      });
      log.info("metrics listening", { url: `http://${urlHost(hostname)}:${metricsServer.port}/metrics` });
    } catch (e) {
      log.error("metrics listener failed; serving without /metrics", {
        addr: `${urlHost(hostname)}:${port}`,
        error: listenError(e),
        hint: "set METRICS_ADDR to a free host:port, or to empty to disable metrics",
      });
    }
  }
  if (redis) {
    log.info("rate limits shared through redis", {
      redis: config.rateLimits.redis!.display,
      timeout_ms: config.rateLimits.redisTimeoutMs,
      on_failure: config.rateLimits.failClosed ? "503" : "per-replica buckets",
    });
  }
  if (tracer) {
    log.info("tracing", {
      endpoint: config.otel.endpoint,
      service: config.otel.serviceName,
      sample_rate: config.otel.sampleRate,
    });
  }
  gateway.start().then(() => {
    if (gateway.ready) log.info("ready", {});
  }, (e) => {
    // A start-up finding that retrying cannot fix (INTROSPECTION_ENDPOINT missing from the metadata).
    if (!(e instanceof ConfigError)) throw e;
    log.error("invalid configuration", { problems: e.problems.map(formatProblem) });
    console.error(`mcp-gate: ${e.message}`);
    rt.exit(1);
  });

  let stopping = false;
  rt.onSignal(async (signal) => {
    if (stopping) {
      log.warn("second signal; exiting now", { signal });
      rt.exit(1);
    }
    stopping = true;
    log.info("shutting down", { signal, grace_ms: config.shutdownTimeoutMs });
    gateway.close();
    await server.shutdown(config.shutdownTimeoutMs);
    await Promise.all([metricsServer?.shutdown(1000), tracer?.shutdown()]);
    redis?.close();
    log.info("stopped", {});
    rt.exit(0);
  });
}
