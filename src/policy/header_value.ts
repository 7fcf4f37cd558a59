/**
 * MCP request metadata headers (2026-07-28): `Mcp-Method` and `Mcp-Name` mirror the body's
 * `method` and `params.name`/`params.uri`. A value that is unsafe as header text is sent as
 * `=?base64?<standard base64 of its UTF-8 bytes>?=`; anything else is taken as is. A party
 * that reads the body must refuse a header that disagrees with it (-32020).
 */
import type { JsonRpcId, McpMessage } from "./jsonrpc.ts";

const Prefix = "=?base64?";
const Suffix = "?=";
const Base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const Utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The value a header carries: the decoded text of the base64 form, or the value itself.
 * undefined when the base64 form is malformed (not canonical base64, or not UTF-8): such
 * a header can agree with no body.
 */
export function decodeHeaderValue(value: string): string | undefined {
  if (!value.startsWith(Prefix) || !value.endsWith(Suffix) || value.length < Prefix.length + Suffix.length) {
    return value;
  }
  const encoded = value.slice(Prefix.length, value.length - Suffix.length);
  if (!Base64.test(encoded)) return undefined;
  const binary = atob(encoded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  try {
    return Utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

export interface HeaderMismatch {
  header: "Mcp-Method" | "Mcp-Name";
  /** The id of the first message the header disagrees with. */
  id: JsonRpcId;
}

/**
 * The first disagreement between the Mcp-Method / Mcp-Name headers, when sent, and the
 * messages of the body: a header describes every message of a batch. Mcp-Name disagrees
 * with a message that has no name too. undefined: no disagreement (or no such header).
 */
export function headerMismatch(headers: Headers, messages: readonly McpMessage[]): HeaderMismatch | undefined {
  const rawMethod = headers.get("mcp-method");
  const rawName = headers.get("mcp-name");
  if (rawMethod === null && rawName === null) return undefined;
  const method = rawMethod === null ? null : decodeHeaderValue(rawMethod);
  const name = rawName === null ? null : decodeHeaderValue(rawName);
  for (const m of messages) {
    if (method !== null && (method === undefined || m.method !== method)) return { header: "Mcp-Method", id: m.id };
    if (name !== null && (name === undefined || m.name !== name)) return { header: "Mcp-Name", id: m.id };
  }
  return undefined;
}
