/**
 * Authorization server metadata discovery: RFC 8414 path-inserted, then OpenID Connect
 * Discovery path-inserted and appended. The document's `issuer` must equal the configured
 * issuer byte for byte (RFC 8414 §3.3) — a trailing-slash difference is an error here,
 * with a message that says so.
 */
import { fetchJson, FetchJsonError } from "./fetch_json.ts";

export interface AuthorizationServerMetadata {
  issuer: string;
  jwks_uri?: string;
  code_challenge_methods_supported?: string[];
  [key: string]: unknown;
}

/** The metadata URLs to try for an issuer, in order. */
export function discoveryUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/$/, "");
  const urls = [
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
    `${url.origin}/.well-known/openid-configuration${path}`,
  ];
  if (path !== "") urls.push(`${url.origin}${path}/.well-known/openid-configuration`);
  return urls;
}

export async function discover(
  fetchFn: typeof fetch,
  issuer: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<AuthorizationServerMetadata & { url: string }> {
  const failures: string[] = [];
  for (const url of discoveryUrls(issuer)) {
    let doc: Record<string, unknown>;
    try {
      doc = await fetchJson(fetchFn, url, timeoutMs, signal);
    } catch (e) {
      if (signal?.aborted) throw e;
      failures.push(e instanceof Error ? e.message : String(e));
      continue;
    }
    if (doc.issuer !== issuer) {
      const got = typeof doc.issuer === "string" ? doc.issuer : "";
      const slash = got.replace(/\/$/, "") === issuer.replace(/\/$/, "")
        ? " (they differ only by a trailing slash: set AUTHORIZATION_SERVER to exactly the issuer the server publishes)"
        : "";
      throw new FetchJsonError(
        `${url} says issuer ${JSON.stringify(doc.issuer)}, but AUTHORIZATION_SERVER is ${
          JSON.stringify(issuer)
        }${slash}`,
      );
    }
    if (doc.jwks_uri !== undefined && typeof doc.jwks_uri !== "string") {
      throw new FetchJsonError(`${url} has a jwks_uri that is not a string`);
    }
    return { ...(doc as AuthorizationServerMetadata), url };
  }
  throw new FetchJsonError(`No authorization server metadata for ${issuer}: ${failures.join("; ")}`);
}
