/** A bounded JSON GET for discovery documents and key sets: timeout, size cap, object check. */
import { GatewayError } from "../errors.ts";

export const MaxDocumentBytes = 1_048_576;

export class FetchJsonError extends GatewayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("fetch_failed", message, options);
  }
}

/** GETs a JSON object within `timeoutMs`; `signal` aborts it early (the caller is closing). */
export async function fetchJson(
  fetchFn: typeof fetch,
  url: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Record<string, unknown>> {
  const timeout = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetchFn(url, {
      headers: { accept: "application/json" },
      redirect: "follow",
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
  } catch (cause) {
    const why = cause instanceof Error && cause.name === "TimeoutError"
      ? `no answer within ${timeoutMs} ms`
      : String(cause);
    throw new FetchJsonError(`GET ${url} failed: ${why}`, { cause });
  }
  try {
    if (res.status !== 200) throw new FetchJsonError(`GET ${url} answered HTTP ${res.status}`);
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > MaxDocumentBytes) throw new FetchJsonError(`GET ${url} is larger than ${MaxDocumentBytes} bytes`);
    const text = await readLimited(res, MaxDocumentBytes, url, timeoutMs);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (cause) {
      throw new FetchJsonError(`GET ${url} did not return JSON`, { cause });
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
      throw new FetchJsonError(`GET ${url} did not return a JSON object`);
    }
    return doc as Record<string, unknown>;
  } finally {
    if (!res.bodyUsed) await res.body?.cancel().catch(() => {});
  }
}

async function readLimited(res: Response, limit: number, url: string, timeoutMs: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        throw new FetchJsonError(`GET ${url} is larger than ${limit} bytes`);
      }
      chunks.push(value);
    }
  } catch (cause) {
    if (cause instanceof FetchJsonError) throw cause;
    const why = cause instanceof Error && cause.name === "TimeoutError"
      ? `body not received within ${timeoutMs} ms`
      : String(cause);
    throw new FetchJsonError(`GET ${url} failed: ${why}`, { cause });
  }
  const all = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.byteLength;
  }
  return new TextDecoder("utf-8", { fatal: false }).decode(all);
}
