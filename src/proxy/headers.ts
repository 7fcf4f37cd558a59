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
/** Set by the gateway only; a client-sent copy is dropped. */
export const IdentityHeaders = ["x-auth-subject", "x-auth-scopes", "x-auth-client-id"] as const;
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

/** The headers the upstream receives. `extraStripped` are configured identity headers. */
export function upstreamRequestHeaders(
  incoming: Headers,
  identity: UpstreamIdentity | null,
  fwd: ForwardedInfo,
  extraStripped: readonly string[],
  token: string | null,
): Headers {
  const h = new Headers(incoming);
  removeConnectionListed(h);
  for (const n of HopByHop) h.delete(n);
  for (const n of StrippedRequest) h.delete(n);
  for (const n of IdentityHeaders) h.delete(n);
  for (const n of extraStripped) h.delete(n);
  h.delete("x-forwarded-for");
  h.delete("x-forwarded-proto");
  h.delete("x-forwarded-host");
  h.delete("x-real-ip");
  h.set("x-forwarded-for", fwd.priorForwardedFor ? `${fwd.priorForwardedFor}, ${fwd.peer}` : fwd.peer);
  h.set("x-forwarded-proto", fwd.proto);
  if (fwd.host !== "") h.set("x-forwarded-host", fwd.host);
  if (identity) {
    h.set("x-auth-subject", headerValue(identity.sub));
    h.set("x-auth-scopes", headerValue(identity.scopes.join(" ")));
    if (identity.clientId !== undefined) h.set("x-auth-client-id", headerValue(identity.clientId));
    for (const [name, value] of identity.extra) h.set(name, headerValue(value));
  }
  if (token !== null) h.set("authorization", `Bearer ${token}`);
  return h;
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
  if (h.get("content-type")?.toLowerCase().startsWith("text/event-stream")) {
    h.set("x-accel-buffering", "no");
    h.set("cache-control", "no-cache");
  }
  return h;
}
