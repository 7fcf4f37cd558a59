/**
 * Header hygiene in both directions (RFC 9110 §7.6.1, MCP "token passthrough"):
 * hop-by-hop headers and those named in Connection never cross the gateway; the
 * client's credentials and cookies never reach the upstream; identity headers reach it
 * only as set by the gateway after verification.
 */

export const HopByHop = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authenticate",
  "proxy-authorization",
] as const;

/** Never forwarded upstream, whatever the client sends. */
const StrippedRequest = ["authorization", "cookie", "host", "content-length", "accept-encoding", "forwarded"];
/** Replaced by the gateway's own values. */
const ForwardedHeaders = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip"];
/** Set by the gateway only; a client-sent copy is dropped. */
export const IdentityHeaders = ["x-auth-subject", "x-auth-scopes", "x-auth-client-id"] as const;
/**
 * Identity headers that upstreams written for oauth2-proxy, Pomerium, Authelia or Apache
 * trust: a client-sent copy is dropped (the gateway never sets them), with the prefixes below.
 */
export const SpoofableIdentityHeaders = [
  "x-forwarded-user",
  "x-forwarded-email",
  "x-forwarded-preferred-username",
  "x-forwarded-groups",
  "x-forwarded-access-token",
  "remote-user",
  "remote-email",
  "remote-groups",
  "remote-name",
  "x-remote-user",
  "x-user",
  "x-email",
] as const;
export const SpoofableIdentityPrefixes = ["x-auth-request-", "x-pomerium-"] as const;
const StrippedResponse = ["server", "x-powered-by"];

function removeConnectionListed(h: Headers): void {
  const listed = h.get("connection");
  if (listed) {
    for (const name of listed.split(",")) {
      const n = name.trim();
      if (n !== "") h.delete(n);
    }
  }
}

/**
 * Which client request headers never reach the upstream, compiled once from the
 * configuration. `exact` maps a lower-case name to whether dropping it is worth a debug
 * line (a client-sent identity header) or routine (credentials, hop-by-hop, X-Forwarded-*).
 */
export interface RequestHeaderFilter {
  readonly exact: ReadonlyMap<string, boolean>;
  /** Lower-case name prefixes of identity headers (always reported). */
  readonly prefixes: readonly string[];
}

/**
 * @param claimHeaders the configured claim headers (CLAIM_HEADERS), set by the gateway itself
 * @param strip STRIP_REQUEST_HEADERS: names, or `prefix*` patterns, any case
 */
export function requestHeaderFilter(claimHeaders: readonly string[], strip: readonly string[]): RequestHeaderFilter {
  const exact = new Map<string, boolean>();
  for (const n of [...HopByHop, ...StrippedRequest, ...ForwardedHeaders]) exact.set(n, false);
  for (const n of [...IdentityHeaders, ...SpoofableIdentityHeaders, ...claimHeaders]) exact.set(n.toLowerCase(), true);
  const prefixes: string[] = [...SpoofableIdentityPrefixes];
  for (const entry of strip) {
    const n = entry.toLowerCase();
    if (n.endsWith("*")) prefixes.push(n.slice(0, -1));
    else exact.set(n, true);
  }
  return { exact, prefixes };
}

/**
 * Claim values become header values: printable ASCII goes as it is; anything else (UTF-8
 * names, control characters) is percent-encoded as UTF-8, since a header value cannot
 * carry it.
 */
export function headerValue(value: string): string {
  return /^[\x20-\x7E]*$/.test(value) ? value : encodeURIComponent(value);
}

export interface UpstreamIdentity {
  sub: string;
  scopes: readonly string[];
  clientId: string | undefined;
  /** Extra configured claim headers: [header, value]. */
  extra: readonly (readonly [string, string])[];
}

export interface ForwardedInfo {
  /** The connecting address (the socket peer), appended to X-Forwarded-For. */
  peer: string;
  proto: string;
  host: string;
  /** Trusted X-Forwarded-For chain from a proxy in TRUSTED_PROXIES, if any. */
  priorForwardedFor: string | null;
}

/**
 * The headers the upstream receives: the client's, less those `filter` and the client's
 * Connection header name, in one pass, plus X-Forwarded-* and the verified identity.
 * `onStripped` hears the names (never the values) of the identity headers dropped.
 */
export function upstreamRequestHeaders(
  incoming: Headers,
  identity: UpstreamIdentity | null,
  fwd: ForwardedInfo,
  filter: RequestHeaderFilter,
  token: string | null,
  onStripped?: (names: string[]) => void,
): Headers {
  const { exact, prefixes } = filter;
  const listed = incoming.get("connection");
  const connectionListed = listed ? new Set(listed.toLowerCase().split(",").map((n) => n.trim())) : undefined;
  const kept: [string, string][] = [];
  let stripped: string[] | undefined;
  // Names come lower-case, repeats already joined.
  incoming.forEach((value, name) => {
    const report = exact.get(name);
    if (report !== undefined) {
      if (report) (stripped ??= []).push(name);
      return;
    }
    if (connectionListed?.has(name)) return;
    for (const p of prefixes) {
      if (name.startsWith(p)) {
        (stripped ??= []).push(name);
        return;
      }
    }
    kept.push([name, value]);
  });
  if (stripped && onStripped) onStripped(stripped);

  kept.push(["x-forwarded-for", fwd.priorForwardedFor ? `${fwd.priorForwardedFor}, ${fwd.peer}` : fwd.peer]);
  kept.push(["x-forwarded-proto", fwd.proto]);
  if (fwd.host !== "") kept.push(["x-forwarded-host", fwd.host]);
  if (identity) {
    kept.push(["x-auth-subject", headerValue(identity.sub)]);
    kept.push(["x-auth-scopes", headerValue(identity.scopes.join(" "))]);
    if (identity.clientId !== undefined) kept.push(["x-auth-client-id", headerValue(identity.clientId)]);
  }
  if (token !== null) kept.push(["authorization", `Bearer ${token}`]);
  const h = new Headers(kept);
  if (identity) { for (const [name, value] of identity.extra) h.set(name, headerValue(value)); }
  return h;
}

/** A `text/event-stream` response, however the media type is spelt (it is case-insensitive). */
export function isEventStream(h: Headers): boolean {
  return h.get("content-type")?.trimStart().toLowerCase().startsWith("text/event-stream") === true;
}

/**
 * The headers the client receives from an upstream response. `decoded`: the runtime's
 * fetch already decompressed the body, so Content-Encoding/Content-Length would lie.
 */
export function clientResponseHeaders(upstream: Headers): Headers {
  const h = new Headers(upstream);
  removeConnectionListed(h);
  for (const n of HopByHop) h.delete(n);
  for (const n of StrippedResponse) h.delete(n);
  if (h.has("content-encoding")) {
    h.delete("content-encoding");
    h.delete("content-length");
  }
  if (isEventStream(h)) {
    h.set("x-accel-buffering", "no");
    h.set("cache-control", "no-cache");
  }
  return h;
}
