// In-process harness for the property-based fuzz tests: the gateway from createGateway()
// on a fixed clock, an in-memory authorization server and recording upstream behind one
// injected fetch (tests/unit/_fixtures.ts FakeNet), and a logger that keeps every line.
//
// Runs are reproducible: FUZZ_SEED (default below) and FUZZ_RUNS (cases per property)
// are read from the environment; a failure prints the seed and the shrunk counterexample.
import fc from "fast-check";
import { assert } from "@std/assert";
import { createGateway, type Gateway } from "../../src/app.ts";
import { createLogger } from "../../src/logging.ts";
import {
  claims,
  config,
  FakeNet,
  ISSUER,
  JWKS_URL,
  makeKey,
  RESOURCE,
  sign,
  T0,
  type TestKey,
  UPSTREAM,
} from "../unit/_fixtures.ts";

export const FUZZ_SEED = Number(Deno.env.get("FUZZ_SEED") ?? "20261126");
export const FUZZ_RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? "400");

/** fast-check parameters for every property: fixed seed, bounded runs, no time-based limits. */
export function params(runs = FUZZ_RUNS): fc.Parameters<unknown> {
  return { seed: FUZZ_SEED, numRuns: runs, verbose: 1 };
}

export const ORIGIN = "http://gw.test";
export const PEER = "127.0.0.1";

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  /** Requests the upstream received for this call. */
  upstream: { method: string; url: string; headers: Headers }[];
  /** URLs fetched for this call other than the JWKS and the upstream (must stay empty). */
  foreign: string[];
  /** Log lines written during this call. */
  logs: string[];
}

export interface FuzzGateway {
  gw: Gateway;
  net: FakeNet;
  rs: TestKey;
  ec: TestKey;
  /** All log lines so far. */
  lines: string[];
  /** A valid token (RS256, at+jwt, scope mcp:read mcp:write) on the fixed clock. */
  validToken: () => Promise<string>;
  /** Sends a request built from parts; throws only if the Request itself cannot be built. */
  send(input: { method?: string; url: string; headers?: Headers | [string, string][] }): Promise<Reply>;
}

/** Required scope mcp:read; rate limit off (the clock stands still). */
export async function fuzzGateway(env: Record<string, string | undefined> = {}): Promise<FuzzGateway> {
  const rs = await makeKey("RS256", "fuzz-rs");
  const ec = await makeKey("ES256", "fuzz-ec");
  const net = new FakeNet([rs.publicJwk, ec.publicJwk]);
  const lines: string[] = [];
  const cfg = config({
    REQUIRED_SCOPES: "mcp:read",
    SCOPES_SUPPORTED: "mcp:read,mcp:write",
    RATE_LIMIT_RPS: "0",
    MAX_CONCURRENT_REQUESTS: "100000",
    ...env,
  });
  const now = () => T0;
  const gw = createGateway(cfg, { fetch: net.fetch, now, log: createLogger("debug", (l) => lines.push(l), now) });
  await gw.start();
  const known = new Set([JWKS_URL, `${ISSUER}/.well-known/oauth-authorization-server`]);
  return {
    gw,
    net,
    rs,
    ec,
    lines,
    validToken: () => sign(rs, claims(T0)),
    async send({ method = "GET", url, headers = [] }) {
      const req = new Request(url, { method, headers });
      const upBefore = net.upstreamRequests.length;
      const callsBefore = net.calls.length;
      const logsBefore = lines.length;
      const res = await gw.fetch(req, { remoteAddr: PEER });
      const text = await res.text();
      return {
        status: res.status,
        headers: res.headers,
        text,
        upstream: net.upstreamRequests.slice(upBefore),
        foreign: net.calls.slice(callsBefore).filter((u) => !known.has(u) && !u.startsWith(`${UPSTREAM}/`)),
        logs: lines.slice(logsBefore),
      };
    },
  };
}

/**
 * Credential material in an Authorization value: every part of 16+ characters between
 * spaces or commas, and the signature segment of anything JWT-shaped. None of it may
 * appear in a log line.
 */
export function secretsOf(authorization: string): string[] {
  const out: string[] = [];
  for (const part of authorization.split(/[\s,]+/)) {
    if (part.length >= 16 && !/^bearer$/i.test(part)) out.push(part);
    const segs = part.split(".");
    if (segs.length >= 3 && segs[2]!.length >= 16) out.push(segs[2]!);
  }
  return out;
}

/** A log line as text, plus its string values JSON-decoded (so escapes cannot hide a piece). */
function searchable(line: string): string {
  try {
    const values: string[] = [];
    JSON.parse(line, (_k, v) => {
      if (typeof v === "string") values.push(v);
      return v;
    });
    return `${line}\n${values.join("\n")}`;
  } catch {
    return line;
  }
}

/**
 * No secret, and no 16-character piece of one, appears in a log line: a prefix of an
 * opaque token is a leak too.
 */
export function assertNoSecretsLogged(logs: string[], secrets: string[], what: string): void {
  if (secrets.length === 0) return;
  for (const line of logs) {
    const text = searchable(line);
    for (const s of secrets) {
      for (let i = 0; i + 16 <= s.length; i += 4) {
        const piece = s.slice(i, i + 16);
        assert(!text.includes(piece), `${what}: a piece of a credential (${JSON.stringify(piece)}) logged: ${line}`);
      }
    }
  }
}

/** True when a header value can be sent at all (Headers accepts it). */
export function sendableHeader(name: string, value: string): boolean {
  try {
    new Headers([[name, value]]);
    return true;
  } catch {
    return false;
  }
}

export { ISSUER, RESOURCE, T0, UPSTREAM };
