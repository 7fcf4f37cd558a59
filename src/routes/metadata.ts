/**
 * RFC 9728 Protected Resource Metadata, built once from the configuration and served at
 * the root and path-inserted well-known URLs. Public, cacheable, readable by any origin.
 */
import type { Config } from "../config.ts";
import { ExposeHeaders } from "../cors.ts";

export function metadataDocument(config: Config): string {
  return JSON.stringify({
    resource: config.resourceUri,
    authorization_servers: config.authorizationServers,
    scopes_supported: config.advertisedScopes,
    bearer_methods_supported: ["header"],
    resource_name: config.resourceName,
    ...(config.resourceDocumentation ? { resource_documentation: config.resourceDocumentation } : {}),
  });
}

/** Returns a handler answering GET/HEAD with the document (HEAD: same headers, no body). */
export function metadataResponder(config: Config): (method: string) => Response {
  const body = metadataDocument(config);
  const length = String(new TextEncoder().encode(body).byteLength);
  return (method) =>
    new Response(method === "HEAD" ? null : body, {
      status: 200,
      headers: {
        "content-type": "application/json",
        "content-length": length,
        "cache-control": "public, max-age=3600",
        "access-control-allow-origin": "*",
        "access-control-expose-headers": ExposeHeaders,
      },
    });
}
