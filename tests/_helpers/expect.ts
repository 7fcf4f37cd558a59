// Request and assertion helpers shared by the e2e tests.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { type Challenge, parseChallenges, type RawResponse } from "./http.ts";
import { RESOURCE_METADATA_URL } from "./gateway.ts";
import type { Upstream } from "./upstream.ts";

/** A response with its body already read (so no test leaks a body stream). */
export interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

export interface SendInit extends RequestInit {
  token?: string;
  userAgent?: string;
}

/** fetch() that always reads the body; `token` sets `Authorization: Bearer`. */
export async function send(url: string, init: SendInit = {}): Promise<Reply> {
  const headers = new Headers(init.headers);
  if (init.token !== undefined) headers.set("authorization", `Bearer ${init.token}`);
  if (init.userAgent !== undefined) headers.set("user-agent", init.userAgent);
  const res = await fetch(url, { ...init, headers, redirect: "manual" });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The JSON-RPC request body the tests POST to /mcp. */
export function rpc(id: number | string, method = "tools/list"): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, params: {} });
}

export const JSON_RPC_HEADERS = {
  "content-type": "application/json",
  "accept": "application/json, text/event-stream",
};

/** Headers on every response the gateway itself generates (spec §6). */
export function assertSecurityHeaders(headers: Headers, what = "gateway response"): void {
  assertEquals(headers.get("x-content-type-options"), "nosniff", `${what}: X-Content-Type-Options`);
  assertEquals(headers.get("x-frame-options"), "DENY", `${what}: X-Frame-Options`);
  assertEquals(headers.get("referrer-policy"), "no-referrer", `${what}: Referrer-Policy`);
}

export interface AuthErrorExpectation {
  status: 400 | 401 | 403;
  /** The `error=` value; undefined means the challenge must have no error (a plain 401). */
  error?: "invalid_token" | "insufficient_scope" | "invalid_request";
  /** Expected `scope=` value, when it must be present. */
  scope?: string;
  /** Whether the body is expected (false for HEAD). */
  body?: boolean;
}

/**
 * Checks an RFC 6750 error response: one Bearer challenge with the resource metadata URL
 * built from RESOURCE_URI, the error code, a description without `"` or `=`, a small
 * JSON body agreeing with the header, and the security headers.
 */
export function assertAuthError(res: Reply | RawResponse, exp: AuthErrorExpectation): Challenge {
  const what = `${exp.status} ${exp.error ?? "challenge"}`;
  assertEquals(res.status, exp.status, `status (body ${JSON.stringify(res.text.slice(0, 300))})`);
  const header = res.headers.get("www-authenticate");
  assert(header !== null, `${what}: WWW-Authenticate present`);
  assert(header.startsWith("Bearer "), `${what}: challenge starts with "Bearer ": ${header}`);
  const challenges = parseChallenges(header);
  assertEquals(challenges.length, 1, `${what}: exactly one challenge in ${header}`);
  const ch = challenges[0]!;
  assertEquals(ch.params.resource_metadata, RESOURCE_METADATA_URL, `${what}: resource_metadata in ${header}`);
  if (exp.scope !== undefined) assertEquals(ch.params.scope, exp.scope, `${what}: scope in ${header}`);
  if (exp.error === undefined) {
    assertEquals(ch.params.error, undefined, `${what}: no error= on a token-less 401 (RFC 6750 §3.1): ${header}`);
  } else {
    assertEquals(ch.params.error, exp.error, `${what}: error in ${header}`);
    const desc = ch.params.error_description;
    assert(desc !== undefined && desc.length > 0, `${what}: error_description present in ${header}`);
    assertMatch(desc, /^[^"=\\]+$/, `${what}: error_description has no '"', '=' or '\\'`);
  }
  assertSecurityHeaders(res.headers, what);
  if (exp.body !== false) {
    assertMatch(res.headers.get("content-type") ?? "", /^application\/json\b/, `${what}: JSON content type`);
    const body = JSON.parse(res.text);
    assertEquals(typeof body.error, "string", `${what}: body.error in ${res.text}`);
    assertEquals(typeof body.error_description, "string", `${what}: body.error_description in ${res.text}`);
    if (exp.error !== undefined) assertEquals(body.error, exp.error, `${what}: body.error`);
  }
  return ch;
}

/** Asserts a JSON error body (the gateway's own 4xx/5xx answers). */
export function assertJsonError(res: Reply | RawResponse, status: number): Record<string, unknown> {
  assertEquals(res.status, status, `status (body ${JSON.stringify(res.text.slice(0, 300))})`);
  assertMatch(res.headers.get("content-type") ?? "", /^application\/json\b/, `${status}: JSON content type`);
  const body = JSON.parse(res.text);
  assertEquals(typeof body.error, "string", `${status}: body.error in ${res.text}`);
  return body;
}

/** Nothing reached the upstream since the last reset(). */
export function assertUpstreamSawNothing(upstream: Upstream, what: string): void {
  assertEquals(upstream.requests.map((r) => `${r.method} ${r.path}`), [], `${what}: upstream received nothing`);
}

/** The one request the upstream received since the last reset(). */
export function onlyUpstreamRequest(upstream: Upstream) {
  assertEquals(upstream.requests.length, 1, `upstream requests: ${upstream.requests.map((r) => r.path)}`);
  return upstream.requests[0]!;
}
