/**
 * Reads a request body whole, for a middleware that must look inside it before the request
 * is forwarded (SCOPE_RULES). The same bounds as a streamed body: MAX_REQUEST_BODY counts
 * the bytes received, chunked or not (413), and READ_TIMEOUT bounds the whole read (408).
 *
 * A body with a Content-Length (checked against the limit first; HTTP framing bounds it)
 * is read natively with arrayBuffer(), which costs a fraction of a JS read loop; a chunked
 * body is read chunk by chunk so that its bytes can be counted as they come.
 */
import { RequestError } from "../errors.ts";

function tooLarge(maxBytes: number): RequestError {
  return new RequestError("body_too_large", 413, `Request body exceeds ${maxBytes} bytes`);
}

function clientGone(): RequestError {
  return new RequestError("client_closed", 499, "The client went away while sending the request body");
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
  try {
    const bytes = declared !== null ? await readDeclared(req, timeout) : await readChunked(req, maxBytes, timeout);
    if (bytes.byteLength > maxBytes) throw tooLarge(maxBytes);
    return bytes;
  } finally {
    clearTimeout(timer);
  }
}

async function readDeclared(req: Request, timeout: Promise<never>): Promise<Uint8Array<ArrayBuffer>> {
  const read = req.arrayBuffer();
  read.catch(() => {}); // after a timeout nobody waits for it
  try {
    return new Uint8Array(await Promise.race([read, timeout]));
  } catch (e) {
    throw e instanceof RequestError ? e : clientGone();
  }
}

async function readChunked(req: Request, maxBytes: number, timeout: Promise<never>): Promise<Uint8Array<ArrayBuffer>> {
  const reader = req.body!.getReader();
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
    throw e instanceof RequestError ? e : clientGone();
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}
