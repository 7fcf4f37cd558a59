/**
 * Guards a streamed request body on its way to the upstream: MAX_REQUEST_BODY counts the
 * bytes actually received (a chunked body has no Content-Length to check up front), and
 * READ_TIMEOUT bounds how long the client may take to send it. Either breach errors the
 * stream, which aborts the upstream request; `violation()` then says which one it was.
 */
import { RequestError } from "../errors.ts";

export interface GuardedBody {
  stream: ReadableStream<Uint8Array>;
  violation(): RequestError | undefined;
  /** Stops the read timer (the exchange ended). */
  dispose(): void;
}

export function guardBody(body: ReadableStream<Uint8Array>, maxBytes: number, readTimeoutMs: number): GuardedBody {
  let received = 0;
  let violation: RequestError | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stream = body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      start(controller) {
        if (readTimeoutMs > 0) {
          timer = setTimeout(() => {
            violation = new RequestError(
              "read_timeout",
              408,
              `The request body was not received within ${readTimeoutMs} ms`,
            );
            controller.error(violation);
          }, readTimeoutMs);
        }
      },
      transform(chunk, controller) {
        received += chunk.byteLength;
        if (received > maxBytes) {
          clearTimeout(timer);
          violation = new RequestError("body_too_large", 413, `Request body exceeds ${maxBytes} bytes`);
          controller.error(violation);
          return;
        }
        controller.enqueue(chunk);
      },
      flush() {
        clearTimeout(timer);
      },
      cancel() {
        clearTimeout(timer);
      },
    }),
  );
  return { stream, violation: () => violation, dispose: () => clearTimeout(timer) };
}
