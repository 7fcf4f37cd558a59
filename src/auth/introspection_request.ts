/**
 * One RFC 7662 introspection exchange: POST `token=…&token_type_hint=access_token` with
 * client_secret_basic, the answer bounded in size (64 KiB, counted while reading) and in
 * time (one deadline for the headers and the body), and required to be a JSON object with
 * a boolean `active`.
 *
 * Not done here: deciding whether an active token is acceptable (introspection.ts), and
 * retries — a failure is reported to the caller, which answers 503 and caches nothing.
 * Error messages name the endpoint and what went wrong, never the token or the secret.
 */
import { GatewayError } from "../errors.ts";

export const MaxAnswerBytes = 65_536;

export type IntrospectionFailure =
  /** No connection, reset, TLS failure, DNS. */
  | "unreachable"
  | "timeout"
  /** 401/403: the authorization server refused the gateway's own credentials. */
  | "credentials"
  /** Any other status but 200. */
  | "status"
  /** Not JSON, not an object, no boolean `active`, or over MaxAnswerBytes. */
  | "bad_answer";

export class IntrospectionError extends GatewayError {
  readonly failure: IntrospectionFailure;
  constructor(failure: IntrospectionFailure, message: string, options?: { cause?: unknown }) {
    super("introspection_failed", message, options);
    this.failure = failure;
  }
}

export interface IntrospectionClient {
  endpoint: string;
  clientId: string;
  clientSecret: string;
  timeoutMs: number;
}

/** RFC 6749 §2.3.1: each part application/x-www-form-urlencoded, then HTTP Basic. */
export function basicCredentials(clientId: string, clientSecret: string): string {
  const form = (s: string) => new URLSearchParams([["", s]]).toString().slice(1);
  const bytes = new TextEncoder().encode(`${form(clientId)}:${form(clientSecret)}`);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

export interface IntrospectionAnswer {
  /** The JSON object; `active` is a boolean. */
  answer: Record<string, unknown>;
  /** Its size on the wire. */
  bytes: number;
}

/** Introspects `token`; resolves with the answer (active or not), rejects with IntrospectionError. */
export async function introspect(
  fetchFn: typeof fetch,
  client: IntrospectionClient,
  token: string,
  authorization: string = basicCredentials(client.clientId, client.clientSecret),
): Promise<IntrospectionAnswer> {
  const { endpoint, timeoutMs } = client;
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetchFn(endpoint, {
      method: "POST",
      headers: {
        authorization,
        accept: "application/json",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams([["token", token], ["token_type_hint", "access_token"]]).toString(),
      redirect: "manual",
      signal,
    });
  } catch (cause) {
    throw signal.aborted
      ? new IntrospectionError("timeout", `POST ${endpoint}: no answer within ${timeoutMs} ms`, { cause })
      : new IntrospectionError("unreachable", `POST ${endpoint} failed: ${describe(cause)}`, { cause });
  }
  try {
    if (res.status === 401 || res.status === 403) {
      throw new IntrospectionError(
        "credentials",
        `POST ${endpoint} answered HTTP ${res.status}: the authorization server refused INTROSPECTION_CLIENT_ID ` +
          `${JSON.stringify(client.clientId)} and its secret`,
      );
    }
    if (res.status !== 200) throw new IntrospectionError("status", `POST ${endpoint} answered HTTP ${res.status}`);
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > MaxAnswerBytes) {
      throw new IntrospectionError("bad_answer", `POST ${endpoint}: the answer is larger than ${MaxAnswerBytes} bytes`);
    }
    const bytes = await readCapped(res.body, signal, endpoint, timeoutMs);
    return { answer: parseAnswer(new TextDecoder().decode(bytes), endpoint), bytes: bytes.byteLength };
  } finally {
    if (!res.bodyUsed) await res.body?.cancel().catch(() => {});
  }
}

function parseAnswer(text: string, endpoint: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new IntrospectionError("bad_answer", `POST ${endpoint}: the answer is not JSON`, { cause });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new IntrospectionError("bad_answer", `POST ${endpoint}: the answer is not a JSON object`);
  }
  const active = (doc as Record<string, unknown>).active;
  if (typeof active !== "boolean") {
    throw new IntrospectionError("bad_answer", `POST ${endpoint}: the answer has no boolean "active" (RFC 7662 §2.2)`);
  }
  return doc as Record<string, unknown>;
}

/** Reads the body, counting bytes as they come; the deadline covers a trickling body too. */
async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  signal: AbortSignal,
  endpoint: string,
  timeoutMs: number,
): Promise<Uint8Array> {
  if (!body) return new Uint8Array();
  const reader = body.getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (signal.aborted) {
        throw new IntrospectionError("timeout", `POST ${endpoint}: the answer did not arrive within ${timeoutMs} ms`);
      }
      if (done) break;
      size += value.byteLength;
      if (size > MaxAnswerBytes) {
        await reader.cancel().catch(() => {});
        throw new IntrospectionError(
          "bad_answer",
          `POST ${endpoint}: the answer is larger than ${MaxAnswerBytes} bytes`,
        );
      }
      chunks.push(value);
    }
  } catch (cause) {
    if (cause instanceof IntrospectionError) throw cause;
    throw signal.aborted
      ? new IntrospectionError("timeout", `POST ${endpoint}: the answer did not arrive within ${timeoutMs} ms`)
      : new IntrospectionError("unreachable", `POST ${endpoint}: reading the answer failed: ${describe(cause)}`, {
        cause,
      });
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  const all = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.byteLength;
  }
  return all;
}

function describe(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n")[0]!.slice(0, 300);
}
