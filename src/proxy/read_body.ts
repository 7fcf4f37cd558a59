/**
 * Reads a request body whole, for a middleware that must look inside it before the request
 * is forwarded (SCOPE_RULES). The same bounds as a streamed body: MAX_REQUEST_BODY counts
 * the bytes received, chunked or not (413), and READ_TIMEOUT bounds the whole read (408).
 */
import { RequestError } from "../errors.ts";

function tooLarge(maxBytes: number): RequestError {
  return new RequestError("body_too_large", 413, `Request body exceeds ${maxBytes} bytes`);
}

/** The body's exact bytes (empty when there is none). Throws RequestError 413, 408 or 499. */
export async function readBody(
  req: Request,
  maxBytes: number,
  readTimeoutMs: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    if (readTimeoutMs > 0) {
      timer = setTimeout(
        () =>
          reject(new RequestError("read_timeout", 408, `The request body was not received within ${readTimeoutMs} ms`)),
        readTimeoutMs,
      );
    }
  });
  timeout.catch(() => {});
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) throw tooLarge(maxBytes);
      chunks.push(value);
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    if (e instanceof RequestError) throw e;
    throw new RequestError("client_closed", 499, "The client went away while sending the request body");
  } finally {
    clearTimeout(timer);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}
