/**
 * Classifies a request body as one JSON-RPC message or a batch, for SCOPE_RULES. It fails
 * closed: anything it cannot classify for certain is refused, so that the gateway never
 * forwards a body the upstream might read differently.
 *
 * - -32700 (id null): not UTF-8, not JSON (an empty body included).
 * - -32600 (id: the message's string or number id, else null): not an object or a batch of
 *   objects, an empty batch, no `"jsonrpc": "2.0"`, a `method` that is not a string,
 *   neither a `method` nor a `result`/`error`, `params` that is not an object or array, a
 *   `params.name`/`params.uri` that is not a string where the method names its target,
 *   or `method`, `params`, `name` or `uri` given twice.
 *
 * It does not check what a method means or whether its params fit its schema: that is the
 * upstream's job.
 */
import { findDuplicateKey } from "./json_keys.ts";

export type JsonRpcId = string | number | null;

export interface McpMessage {
  /** The JSON-RPC method; undefined for a response. */
  method: string | undefined;
  /** The target of the call: `params.name` or `params.uri` (see NameParam); undefined when absent. */
  name: string | undefined;
  id: JsonRpcId;
}

export interface JsonRpcError {
  code: -32700 | -32600;
  id: JsonRpcId;
  message: string;
}

export type Classified =
  | { ok: true; batch: boolean; messages: readonly McpMessage[] }
  /** `methods`: the method of every message refused with the body, for the metrics (undefined: none readable). */
  | { ok: false; error: JsonRpcError; methods: readonly (string | undefined)[] };

/** The parameter that names the target of a call, by method. */
export const NameParam: ReadonlyMap<string, "name" | "uri"> = new Map([
  ["tools/call", "name"],
  ["prompts/get", "name"],
  ["resources/read", "uri"],
  ["resources/subscribe", "uri"],
  ["resources/unsubscribe", "uri"],
]);

export const ParseErrorMessage = "Parse error: the body is not valid JSON";

const Utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function readableId(m: unknown): JsonRpcId {
  if (!isObject(m)) return null;
  const id = m.id;
  return typeof id === "string" || (typeof id === "number" && Number.isFinite(id)) ? id : null;
}

function methodOf(m: unknown): string | undefined {
  return isObject(m) && typeof m.method === "string" ? m.method : undefined;
}

/** Checks one message; returns the reason it is invalid, or the classified message. */
function checkMessage(m: unknown, inBatch: boolean): McpMessage | string {
  if (!isObject(m)) {
    return inBatch ? "a batch element is not an object" : "the body is not a JSON-RPC message or batch";
  }
  if (m.jsonrpc !== "2.0") return '"jsonrpc" must be "2.0"';
  const hasMethod = Object.hasOwn(m, "method");
  if (hasMethod && typeof m.method !== "string") return '"method" must be a string';
  if (!hasMethod && !Object.hasOwn(m, "result") && !Object.hasOwn(m, "error")) {
    return 'a message needs a "method", or a "result" or "error"';
  }
  const params = m.params;
  if (Object.hasOwn(m, "params") && (typeof params !== "object" || params === null)) {
    return '"params" must be an object or an array';
  }
  const method = hasMethod ? m.method as string : undefined;
  let name: string | undefined;
  const key = method === undefined ? undefined : NameParam.get(method);
  if (key !== undefined && isObject(params) && Object.hasOwn(params, key)) {
    const v = params[key];
    if (typeof v !== "string") return `"params.${key}" must be a string`;
    name = v;
  }
  return { method, name, id: readableId(m) };
}

function invalid(message: string, id: JsonRpcId, methods: readonly (string | undefined)[]): Classified {
  return { ok: false, error: { code: -32600, id, message: `Invalid Request: ${message}` }, methods };
}

/** Classifies the exact bytes of a request body. */
export function classifyBody(bytes: Uint8Array): Classified {
  let value: unknown;
  let text: string;
  try {
    text = Utf8.decode(bytes);
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: { code: -32700, id: null, message: ParseErrorMessage }, methods: [undefined] };
  }
  const batch = Array.isArray(value);
  const items: unknown[] = batch ? value as unknown[] : [value];
  if (items.length === 0) return invalid("the batch is empty", null, [undefined]);
  const duplicate = findDuplicateKey(text);
  const messages: McpMessage[] = [];
  for (let i = 0; i < items.length; i++) {
    const m = items[i];
    let checked = checkMessage(m, batch);
    if (typeof checked !== "string" && duplicate?.index === i) checked = `"${duplicate.key}" is given twice`;
    if (typeof checked === "string") return invalid(checked, readableId(m), items.map(methodOf));
    messages.push(checked);
  }
  return { ok: true, batch, messages };
}

/** The JSON-RPC error object the gateway answers a refused body with. */
export function jsonRpcErrorBody(id: JsonRpcId, code: number, message: string): string {
  return JSON.stringify({ jsonrpc: "2.0", id, error: { code, message } });
}
