/**
 * Settings of RFC 7662 token introspection (opaque access tokens). Setting
 * INTROSPECTION_CLIENT_ID turns it on; the other variables only refine it.
 */
import type { EnvReader } from "../env_reader.ts";
import { isLoopbackHost } from "../net.ts";

export interface IntrospectionSettings {
  /** The gateway's own client at the authorization server (client_secret_basic). */
  clientId: string;
  clientSecret: string;
  /** INTROSPECTION_ENDPOINT; undefined: `introspection_endpoint` from the metadata. */
  endpoint: string | undefined;
  /** How long an active answer may be reused (never past the token's exp + CLOCK_SKEW). */
  cacheTtlMs: number;
  /** Time for one introspection exchange, answer included. */
  timeoutMs: number;
}

/** Rows for `Variables` (README table, --help). */
export const IntrospectionVariables: readonly { name: string; default: string; meaning: string }[] = [
  { name: "INTROSPECTION_CLIENT_ID", default: "", meaning: "gateway's client id at the AS; turns on opaque tokens" },
  { name: "INTROSPECTION_CLIENT_SECRET", default: "", meaning: "its secret (client_secret_basic)" },
  { name: "INTROSPECTION_ENDPOINT", default: "(discovered)", meaning: "RFC 7662 URL; metadata's when unset" },
  { name: "INTROSPECTION_CACHE_TTL", default: "60s", meaning: "reuse of an active answer (revocation delay)" },
  { name: "INTROSPECTION_TIMEOUT", default: "5s", meaning: "timeout of one introspection request" },
];

const Dependent = ["INTROSPECTION_CLIENT_SECRET", "INTROSPECTION_ENDPOINT"] as const;

/** The introspection settings, or undefined when INTROSPECTION_CLIENT_ID is unset (or empty). */
export function readIntrospection(r: EnvReader): IntrospectionSettings | undefined {
  const clientId = r.get("INTROSPECTION_CLIENT_ID") || undefined;
  if (clientId === undefined) {
    const set = Dependent.filter((name) => (r.get(name) ?? "") !== "");
    if (set.length > 0) {
      r.problem(
        "INTROSPECTION_CLIENT_ID",
        `expected the gateway's client id at the authorization server, since ${set.join(" and ")} ${
          set.length === 1 ? "is" : "are"
        } set (setting it turns token introspection on)`,
      );
    }
    return undefined;
  }
  const clientSecret = r.get("INTROSPECTION_CLIENT_SECRET") ?? "";
  if (clientSecret === "") {
    // The value is never echoed: it is unset or empty here.
    r.problem(
      "INTROSPECTION_CLIENT_SECRET",
      "expected the secret of INTROSPECTION_CLIENT_ID (the gateway authenticates with client_secret_basic)",
    );
  }
  const endpointRaw = r.get("INTROSPECTION_ENDPOINT") || undefined;
  let endpoint: string | undefined;
  if (endpointRaw !== undefined) {
    const url = r.httpUrl("INTROSPECTION_ENDPOINT", endpointRaw, "the authorization server's introspection endpoint");
    if (url) {
      endpoint = endpointRaw;
      if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
        r.warn(
          `INTROSPECTION_ENDPOINT ${JSON.stringify(endpointRaw)} is http: the client secret and every token ` +
            "cross the network in the clear; use https",
        );
      }
    }
  }
  const cacheTtlMs = r.duration("INTROSPECTION_CACHE_TTL", "60s");
  const timeoutMs = r.duration("INTROSPECTION_TIMEOUT", "5s");
  if (timeoutMs < 1) r.problem("INTROSPECTION_TIMEOUT", "expected more than 0");
  return { clientId, clientSecret, endpoint, cacheTtlMs, timeoutMs };
}
