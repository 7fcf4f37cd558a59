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
/** Never passed back to the client: hop-by-hop, and what identifies the upstream's software. */
const StrippedResponse = new Set<string>([...HopByHop, "server", "x-powered-by"]);

/** Names listed in a Connection header (RFC 9110 §7.6.1), lower-case. */
function connectionListed(h: Headers): Set<string> | undefined {
  const listed = h.get("connection");
  return listed ? new Set(listed.toLowerCase().split(",").map((n) => n.trim())) : undefined;
}

/**
 * Header fields as a record of lower-case names (no prototype, so no name is special): what
 * fetch() and Response take fastest. Deno converts a Headers object passed as init entry by
 * entry through its iterator, about 3× the cost of a record (35 µs per request for the two
 * directions, and as much garbage); on Bun the two cost about the same.
 */
export type HeaderRecord = Record<string, string>;

function emptyRecord(): HeaderRecord {
  return Object.create(null);
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
): HeaderRecord {
  const { exact, prefixes } = filter;
  const listed = connectionListed(incoming);
  const out = emptyRecord();
  let stripped: string[] | undefined;
  // Names come lower-case, repeats already joined.
  incoming.forEach((value, name) => {
    const report = exact.get(name);
    if (report !== undefined) {
      if (report) (stripped ??= []).push(name);
      return;
    }
    if (listed?.has(name)) return;
    for (const p of prefixes) {
      if (name.startsWith(p)) {
        (stripped ??= []).push(name);
        return;
      }
    }
    out[name] = value;
  });
  if (stripped && onStripped) onStripped(stripped);

  out["x-forwarded-for"] = fwd.priorForwardedFor ? `${fwd.priorForwardedFor}, ${fwd.peer}` : fwd.peer;
  out["x-forwarded-proto"] = fwd.proto;
  if (fwd.host !== "") out["x-forwarded-host"] = fwd.host;
  if (identity) {
    out["x-auth-subject"] = headerValue(identity.sub);
    out["x-auth-scopes"] = headerValue(identity.scopes.join(" "));
    if (identity.clientId !== undefined) out["x-auth-client-id"] = headerValue(identity.clientId);
    for (const [name, value] of identity.extra) out[name.toLowerCase()] = headerValue(value);
  }
  if (token !== null) out["authorization"] = `Bearer ${token}`;
  return out;
}

/** A `text/event-stream` Content-Type, however the media type is spelt (it is case-insensitive). */
export function isEventStream(contentType: string | null | undefined): boolean {
  return contentType?.trimStart().toLowerCase().startsWith("text/event-stream") === true;
}

/**
 * The headers the client receives from an upstream response, in one pass. The runtime's
 * fetch already decompressed the body, so Content-Encoding and Content-Length would lie.
 * A record, unless the upstream sets several cookies (a record holds one value per name).
 */
export function clientResponseHeaders(upstream: Headers): HeaderRecord | Headers {
  const listed = connectionListed(upstream);
  const decoded = upstream.has("content-encoding");
  const out = emptyRecord();
  let cookies: string[] | undefined;
  // Set-Cookie comes one entry per cookie; every other name once, repeats joined.
  upstream.forEach((value, name) => {
    if (StrippedResponse.has(name) || listed?.has(name)) return;
    if (decoded && (name === "content-encoding" || name === "content-length")) return;
    if (name === "set-cookie") (cookies ??= []).push(value);
    else out[name] = value;
  });
  if (isEventStream(out["content-type"])) {
    out["x-accel-buffering"] = "no";
    out["cache-control"] = "no-cache";
  }
  if (cookies === undefined) return out;
  const h = new Headers(out);
  for (const c of cookies) h.append("set-cookie", c);
  return h;
}
