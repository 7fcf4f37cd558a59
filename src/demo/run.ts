/**
 * `mcp-gate demo`: a demo authorization server, a sample MCP server and the gateway in
 * front of both, all on loopback, with a banner that says how to try it. DEMO ONLY: the
 * authorization server approves everyone. It starts only when asked for by name.
 *
 * The banner goes to stderr; stdout stays the gateway's JSON log.
 */
import { type ConnInfo, createGateway, type Gateway } from "../app.ts";
import { type ListenAddress, loadConfig, parseListenAddr } from "../config.ts";
import { ConfigError, formatProblem } from "../errors.ts";
import { createLogger, type Level, type Logger } from "../logging.ts";
import { isLoopbackHost, urlHost } from "../net.ts";
import { type RunningServer, type Runtime, runtimeGatewayDeps } from "../runtime.ts";
import { Version } from "../version.ts";
import { createDemoIssuer } from "./issuer.ts";
import { createDemoMcpServer } from "./mcp_server.ts";

export const DemoListenAddr = "127.0.0.1:8080";
export const DemoScope = "mcp:tools";
const ReadyTimeoutMs = 10_000;
/** MAX_HEADER_BYTES of the demo gateway (the default), and what every demo listener accepts. */
const DemoMaxHeaderBytes = 65_536;
const StopGraceMs = 2_000;

type Handler = (req: Request, conn: ConnInfo) => Response | Promise<Response>;

/** Serves a handler that is only known once the port is: the issuer's URL and the resource depend on it. */
function serveLate(rt: Runtime, hostname: string, port: number) {
  let handler: Handler = () => new Response("starting", { status: 503 });
  const server = rt.serve((req, conn) => handler(req, conn), {
    hostname,
    port,
    idleTimeoutMs: 120_000,
    maxHeaderBytes: DemoMaxHeaderBytes,
  });
  return {
    server,
    url: `http://${urlHost(hostname)}:${server.port}`,
    set: (h: Handler) => void (handler = h),
  };
}

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function banner(p: { mcpUrl: string; metadataUrl: string; issuer: string; upstream: string; token: string }) {
  const accept = "-H 'Accept: application/json, text/event-stream' -H 'Content-Type: application/json'";
  const init = JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "curl", version: "1" } },
  });
  const countdown = JSON.stringify({
    jsonrpc: "2.0",
    id: 2,
    method: "tools/call",
    params: { name: "countdown", arguments: { count: 5 }, _meta: { progressToken: "p1" } },
  });
  const rule = "=".repeat(78);
  return `
${rule}
  mcp-gate ${Version} DEMO — NOT FOR PRODUCTION
  A throwaway set-up on loopback: a demo authorization server that approves everyone
  (fresh keys at every start), a sample MCP server, and the gateway in front of both.
${rule}

  MCP URL:               ${p.mcpUrl}
  Resource metadata:     ${p.metadataUrl}
  Authorization server:  ${p.issuer}   (demo: auto-approves, PKCE S256, DCR)
  Sample MCP server:     ${p.upstream}   (tools: echo, whoami, countdown)

  Access token (scope ${DemoScope}, valid 1 h):
    export TOKEN=${p.token}

  Initialize (prints the Mcp-Session-Id header):
    curl -i ${p.mcpUrl} -H 'Authorization: Bearer ${p.token}' ${accept} -d ${quote(init)}

  Then stream a countdown with progress (use the session id from above):
    curl -N ${p.mcpUrl} -H "Authorization: Bearer $TOKEN" ${accept} -H 'Mcp-Session-Id: <id>' -d ${quote(countdown)}

  Without a token you get the 401 challenge a client follows:
    curl -i -X POST ${p.mcpUrl}

  MCP Inspector (npx @modelcontextprotocol/inspector): transport Streamable HTTP,
  URL ${p.mcpUrl}; its OAuth flow completes against the demo server.

  Ctrl-C stops all three. JSON logs follow on stdout.
${rule}
`;
}

/**
 * Starts the sample MCP server, the demo issuer and the gateway in front of them (each
 * server pushed onto `servers` as soon as it listens, so the caller can stop them all),
 * waits for the gateway to load the demo keys and prints the banner.
 */
async function startDemo(
  rt: Runtime,
  listenRaw: string,
  listen: ListenAddress,
  log: Logger,
  servers: RunningServer[],
): Promise<Gateway> {
  let disableMcp: (req: Request) => void = () => {};
  const mcp = createDemoMcpServer({ version: Version, disableTimeouts: (req) => disableMcp(req) });
  const mcpLate = serveLate(rt, "127.0.0.1", 0);
  mcpLate.set((req) => mcp.fetch(req));
  disableMcp = mcpLate.server.disableTimeouts;
  servers.push(mcpLate.server);

  const issuerLate = serveLate(rt, "127.0.0.1", 0);
  servers.push(issuerLate.server);

  let gatewayServer: ReturnType<typeof serveLate>;
  try {
    gatewayServer = serveLate(rt, listen.hostname, listen.port);
  } catch (e) {
    throw new Error(
      `Cannot listen on ${listenRaw} (${(e as Error).message}); set LISTEN_ADDR, e.g. LISTEN_ADDR=127.0.0.1:0`,
    );
  }
  servers.push(gatewayServer.server);
  const mcpUrl = `${gatewayServer.url}/mcp`;

  const issuer = await createDemoIssuer({ issuer: issuerLate.url, audience: mcpUrl, scopes: [DemoScope] });
  issuerLate.set(issuer.fetch);

  const config = loadConfig({
    LISTEN_ADDR: listenRaw,
    UPSTREAM_URL: mcpLate.url,
    RESOURCE_URI: mcpUrl,
    AUTHORIZATION_SERVER: issuer.issuer,
    REQUIRED_SCOPES: DemoScope,
    SCOPES_SUPPORTED: DemoScope,
    RESOURCE_NAME: "mcp-gate demo",
    METRICS_ADDR: "",
    MAX_HEADER_BYTES: String(DemoMaxHeaderBytes),
    SHUTDOWN_TIMEOUT: "2s",
    LOG_LEVEL: log.level,
  });
  const gw = createGateway(config, {
    ...runtimeGatewayDeps(rt),
    log,
    disableTimeouts: (req) => gatewayServer.server.disableTimeouts(req),
  });
  gatewayServer.set(gw.fetch);

  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([gw.start(), new Promise((r) => (timer = setTimeout(r, ReadyTimeoutMs)))]);
  clearTimeout(timer);
  if (!gw.ready) {
    gw.close();
    throw new Error(`The gateway could not load the demo keys within ${ReadyTimeoutMs} ms`);
  }

  const token = await issuer.mint({ sub: "demo-user" });
  log.info("demo ready", { url: mcpUrl, issuer: issuer.issuer, upstream: `${mcpLate.url}/mcp`, version: Version });
  console.error(banner({
    mcpUrl,
    metadataUrl: config.resourceMetadataUrl,
    issuer: issuer.issuer,
    upstream: `${mcpLate.url}/mcp`,
    token,
  }));
  return gw;
}

export async function runDemo(rt: Runtime): Promise<void> {
  const env = rt.env();
  const level = (env["LOG_LEVEL"] || "info").toLowerCase();
  const log = createLogger(["debug", "info", "warn", "error"].includes(level) ? level as Level : "info");

  const listenRaw = env["LISTEN_ADDR"] || DemoListenAddr;
  const listen = parseListenAddr(listenRaw);
  if (!listen || !isLoopbackHost(listen.hostname)) {
    console.error(
      `mcp-gate demo: LISTEN_ADDR ${JSON.stringify(listenRaw)} is not a loopback host:port; ` +
        `the demo listens on loopback only (for example ${DemoListenAddr} or 127.0.0.1:0)`,
    );
    return rt.exit(2);
  }

  const servers: RunningServer[] = [];
  let gateway: Gateway | undefined;
  try {
    gateway = await startDemo(rt, listenRaw, listen, log, servers);
  } catch (e) {
    const msg = e instanceof ConfigError ? e.problems.map(formatProblem).join("; ") : (e as Error).message;
    console.error(`mcp-gate demo: ${msg}`);
    await Promise.all(servers.map((s) => s.shutdown(0)));
    return rt.exit(1);
  }

  let stopping = false;
  rt.onSignal(async (signal) => {
    if (stopping) rt.exit(1);
    stopping = true;
    log.info("demo stopping", { signal });
    gateway?.close();
    await Promise.all(servers.map((s) => s.shutdown(StopGraceMs)));
    log.info("stopped", {});
    rt.exit(0);
  });
}
