/**
 * `mcp-gate check` for opaque tokens: finds the introspection endpoint the way the gateway
 * does, then introspects a random string with the configured credentials. A working
 * endpoint says `{"active": false}`; a 401/403 means the gateway's credentials are wrong.
 * Each finding is one sentence saying what is wrong and how to fix it.
 */
import type { Config } from "../config.ts";
import { isLoopbackHost } from "../net.ts";
import { discover } from "./discovery.ts";
import type { IntrospectionSettings } from "./introspection_config.ts";
import { introspect, IntrospectionError } from "./introspection_request.ts";

export interface Finding {
  kind: "ok" | "warn" | "problem";
  text: string;
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function findEndpoint(
  config: Config,
  settings: IntrospectionSettings,
  fetchFn: typeof fetch,
  out: Finding[],
): Promise<string | undefined> {
  if (settings.endpoint !== undefined) {
    out.push({ kind: "ok", text: `INTROSPECTION_ENDPOINT is ${settings.endpoint}.` });
    return settings.endpoint;
  }
  const issuer = config.authorizationServers[0]!;
  let meta: Awaited<ReturnType<typeof discover>>;
  try {
    meta = await discover(fetchFn, issuer, config.jwksFetchTimeoutMs);
  } catch (e) {
    out.push({
      kind: "problem",
      text: `The introspection endpoint cannot be discovered from ${issuer} (${
        e instanceof Error ? e.message : String(e)
      }): make the authorization server's metadata reachable, or set INTROSPECTION_ENDPOINT.`,
    });
    return undefined;
  }
  const ep = meta.introspection_endpoint;
  if (typeof ep !== "string" || !URL.canParse(ep)) {
    out.push({
      kind: "problem",
      text: `The metadata at ${meta.url} has no usable introspection_endpoint, so the gateway will not start with ` +
        "INTROSPECTION_CLIENT_ID set: set INTROSPECTION_ENDPOINT to the authorization server's RFC 7662 endpoint.",
    });
    return undefined;
  }
  out.push({ kind: "ok", text: `The introspection endpoint ${ep} is published in ${meta.url}.` });
  return ep;
}

/** The findings about introspection; empty when INTROSPECTION_CLIENT_ID is unset. */
export async function checkIntrospection(config: Config, fetchFn: typeof fetch): Promise<Finding[]> {
  const settings = config.introspection;
  if (settings === undefined) return [];
  const out: Finding[] = [];
  const endpoint = await findEndpoint(config, settings, fetchFn, out);
  if (endpoint === undefined) return out;
  const url = new URL(endpoint);
  if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
    out.push({
      kind: "warn",
      text: `The introspection endpoint uses http, so the client secret and every token cross the network in the ` +
        `clear: use the authorization server's https URL.`,
    });
  }
  const client = { endpoint, clientId: settings.clientId, clientSecret: settings.clientSecret, timeoutMs: 10_000 };
  let answer: Record<string, unknown>;
  try {
    ({ answer } = await introspect(fetchFn, client, randomToken()));
  } catch (e) {
    if (e instanceof IntrospectionError && e.failure === "credentials") {
      out.push({
        kind: "problem",
        text:
          `The introspection endpoint refused the gateway's credentials (${
            e.message.match(/HTTP \d+/)?.[0]
          }), so every opaque token would get 503: register the gateway at the authorization server as a confidential ` +
          `client allowed to introspect, with client_secret_basic, and set INTROSPECTION_CLIENT_ID and ` +
          `INTROSPECTION_CLIENT_SECRET to its id and secret.`,
      });
    } else {
      out.push({
        kind: "problem",
        text:
          `Introspecting a test token failed (${
            e instanceof Error ? e.message : String(e)
          }), so every opaque token would get 503: check INTROSPECTION_ENDPOINT and that the authorization server ` +
          "is reachable from here.",
      });
    }
    return out;
  }
  if (answer.active === false) {
    out.push({
      kind: "ok",
      text: `INTROSPECTION_CLIENT_ID ${JSON.stringify(settings.clientId)} may introspect, and a random string is ` +
        `{"active": false}.`,
    });
  } else {
    out.push({
      kind: "problem",
      text: `The introspection endpoint says a random string is active, so it would let any token through: ` +
        "make INTROSPECTION_ENDPOINT the authorization server's real RFC 7662 endpoint.",
    });
  }
  return out;
}
