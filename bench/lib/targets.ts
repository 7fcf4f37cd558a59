/** The systems under test: nginx as a plain proxy, HAProxy with jwt_verify, mcp-gate in each form. */
import {
  baseEnv,
  BenchDir,
  Bun,
  Data,
  denoGatewayArgv,
  freePort,
  Issuer,
  type Proc,
  ResourceUri,
  Run,
  spawn,
} from "./common.ts";
import { nginxTemps } from "./setup.ts";
export interface Target {
  key: string;
  label: string;
  /** Checks tokens (false: nginx, the plain proxy). */
  auth: boolean;
  /** Caches verified tokens (a cold pool that wraps is no longer cold). */
  caches: boolean;
  /** The command (already pinned) and environment that serve on `port`, logging to `logFile`. */
  prepare(port: number, logFile: string): Promise<{ argv: string[]; env: Record<string, string> }>;
}

export const pin = (
  argv: string[],
  cpu: number | undefined,
) => (cpu !== undefined ? ["taskset", "-c", String(cpu), ...argv] : argv);

/** Starts the system; `extraEnv` on top of its environment (the feature rows). */
export async function startTarget(
  t: Target,
  port: number,
  logFile: string,
  extraEnv: Record<string, string> = {},
): Promise<Proc> {
  const { argv, env } = await t.prepare(port, logFile);
  return spawn(t.label, argv, { env: { ...env, ...extraEnv }, logFile });
}

export function gatewayEnv(port: number, origin: { port: number; jwksPort: number }, metricsPort: number) {
  return {
    ...baseEnv(),
    LISTEN_ADDR: `127.0.0.1:${port}`,
    UPSTREAM_URL: `http://127.0.0.1:${origin.port}`,
    RESOURCE_URI: ResourceUri,
    AUTHORIZATION_SERVER: Issuer,
    JWKS_URI: `http://127.0.0.1:${origin.jwksPort}/jwks.json`,
    RATE_LIMIT_RPS: "0",
    // Metrics stay on, as by default, but on loopback (the default :9090 is every interface).
    METRICS_ADDR: `127.0.0.1:${metricsPort}`,
  };
}

export function makeTargets(
  origin: { port: number; jwksPort: number },
  sutCpu: number | undefined,
  binary: string,
  src: string,
  b: { binary: string; src: string } | undefined,
): Record<string, Target> {
  const gateway = (key: string, label: string, argv: string[], caches = true): Target => ({
    key,
    label,
    auth: true,
    caches,
    prepare: (port) => Promise.resolve({ argv: pin(argv, sutCpu), env: gatewayEnv(port, origin, freePort()) }),
  });
  return {
    nginx: {
      key: "nginx",
      label: "nginx proxy, no auth",
      auth: false,
      caches: false,
      async prepare(port, logFile) {
        const dir = `${Run}/nginx-proxy`;
        await Deno.mkdir(`${dir}/tmp_client_body`, { recursive: true });
        const conf = `${dir}/nginx.conf`;
        await Deno.writeTextFile(
          conf,
          `worker_processes 1;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; multi_accept on; }
http {
  ${nginxTemps(dir)}
  log_format main '$remote_addr - [$time_local] "$request" $status $body_bytes_sent "$http_user_agent" $request_time';
  access_log ${logFile} main;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  upstream origin { server 127.0.0.1:${origin.port}; keepalive 128; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_buffering off;
    }
  }
}
`,
        );
        return { argv: pin(["nginx", "-e", `${dir}/error.log`, "-p", dir, "-c", conf], sutCpu), env: baseEnv() };
      },
    },
    haproxy: {
      key: "haproxy",
      label: "HAProxy jwt_verify",
      auth: true,
      caches: false,
      async prepare(port) {
        const conf = `${Run}/haproxy.cfg`;
        // Same checks as the gateway: alg allowlist, signature (static PEM key: HAProxy has
        // no JWKS), iss, aud, sub present, exp against date(). The token is not forwarded,
        // the subject is (as the gateway's X-Auth-Subject). One thread, as on one core.
        await Deno.writeTextFile(
          conf,
          `global
  nbthread 1
  maxconn 8000
  log stdout format raw local0 info
defaults
  mode http
  log global
  option httplog
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 300s
frontend fe
  bind 127.0.0.1:${port}
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request deny status 401 unless { var(txn.alg) -m str RS256 ES256 }
  http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('$.iss') -m str ${Issuer} }
  http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('$.aud') -m str ${ResourceUri} }
  http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('$.sub')
  http-request deny status 401 unless { var(txn.sub) -m found }
  http-request set-var(txn.now) date()
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request deny status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  http-request deny status 401 if { var(txn.alg) -m str RS256 } !{ var(txn.bearer),jwt_verify(txn.alg,"${Data}/rsa.pem") -m int 1 }
  http-request deny status 401 if { var(txn.alg) -m str ES256 } !{ var(txn.bearer),jwt_verify(txn.alg,"${Data}/ec.pem") -m int 1 }
  http-request del-header authorization
  http-request set-header x-auth-subject %[var(txn.sub)]
  option forwardfor
  use_backend origin_stream if { path_beg /sse }
  default_backend origin
backend origin
  http-reuse always
  server origin 127.0.0.1:${origin.port}
# SSE as one would deploy it: without http-no-delay HAProxy holds a lone small event
# back (MSG_MORE) and the first one arrives ~200 ms late.
backend origin_stream
  option http-no-delay
  server origin 127.0.0.1:${origin.port}
`,
        );
        return { argv: pin(["haproxy", "-db", "-f", conf], sutCpu), env: baseEnv() };
      },
    },
    // As `deno task start` and `bun run mod.ts` from the checkout (deno.json's flags apply).
    deno: gateway("deno", "mcp-gate on Deno", denoGatewayArgv(src)),
    bun: gateway("bun", "mcp-gate on Bun", [Bun, "run", `${src}/mod.ts`]),
    binary: gateway("binary", "mcp-gate binary", [binary]),
    // --src2: the same forms from a second checkout, for an A/B comparison within one run.
    ...(b
      ? {
        deno2: gateway("deno2", "mcp-gate on Deno (B)", denoGatewayArgv(b.src)),
        bun2: gateway("bun2", "mcp-gate on Bun (B)", [Bun, "run", `${b.src}/mod.ts`]),
        binary2: gateway("binary2", "mcp-gate binary (B)", [b.binary]),
      }
      : {}),
    "naive-bun": gateway("naive-bun", "naive Bun + jose", [Bun, `${BenchDir}/naive_proxy.ts`], false),
    // The runtime's own floor: Bun.serve + a streamed fetch and nothing else (no token check,
    // no log): what a proxy written in JavaScript on Bun costs before it does any work.
    "bare-bun": {
      key: "bare-bun",
      label: "bare Bun.serve + fetch, no auth",
      auth: false,
      caches: false,
      prepare: (port) =>
        Promise.resolve({
          argv: pin([Bun, `${BenchDir}/naive_proxy.ts`], sutCpu),
          env: { ...gatewayEnv(port, origin, freePort()), NAIVE_NO_VERIFY: "1" },
        }),
    },
    "naive-deno": gateway("naive-deno", "naive Deno + jose", [
      Deno.execPath(),
      "run",
      "-A",
      `${BenchDir}/naive_proxy.ts`,
    ], false),
  };
}
