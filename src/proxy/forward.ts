/**
 * Sends a request to the upstream and streams the answer back.
 *
 * - Bodies are streams both ways (`duplex: "half"`); nothing is buffered.
 * - UPSTREAM_TIMEOUT covers the time to the response headers only; once they arrive the
 *   stream has no timeout of its own.
 * - The upstream request is aborted when the client goes away: through the request's
 *   signal, and through the response stream's cancel (Bun does not cancel the upstream
 *   body by itself).
 * - An upstream 401/403 becomes 502: the client's token was good here, and passing the
 *   status on would make the client re-authorise in a loop.
 */
import { RequestError, UpstreamError } from "../errors.ts";
import { guardBody } from "./body_guard.ts";
import { chunkReader } from "./chunk_reader.ts";
import { clientResponseHeaders, type HeaderRecord, isEventStream } from "./headers.ts";

const NullBodyStatus = new Set([101, 103, 204, 205, 304]);

export interface ForwardOptions {
  fetch: typeof fetch;
  /**
   * Awaited just before the upstream fetch starts (runtime.ts nextTurn): the fetches of one
   * event-loop turn then start together, one wake-up of the runtime's HTTP client for many.
   */
  beforeFetch?: (() => Promise<void>) | undefined;
  timeoutMs: number;
  maxRequestBody: number;
  readTimeoutMs: number;
  /**
   * Start an event stream with an SSE comment line. Bun holds back the end of the
   * response head until the first body chunk, so a quiet stream (the MCP standalone GET)
   * would otherwise leave the client waiting for headers; SSE parsers ignore comments.
   */
  primeEventStream?: boolean;
  /** Called once when the exchange is over: response body ended, cancelled or failed. */
  onEnd?: (() => void) | undefined;
  /** The request body, already read whole by the gateway (SCOPE_RULES): sent instead of req.body. */
  body?: Uint8Array<ArrayBuffer> | undefined;
}

const SsePrime = new TextEncoder().encode(":\n\n");
/** Fixed-length responses up to this size skip the relay (see below). */
const NativeBodyMax = 1_048_576;

/** Upstream URL: the base URL's path, then the request's path and query. */
export function upstreamTarget(base: URL, path: string, search: string): string {
  const basePath = base.pathname.endsWith("/") ? base.pathname.slice(0, -1) : base.pathname;
  return `${base.origin}${basePath}${path}${search}`;
}

/**
 * Removes `access_token` parameters (however the name is encoded) from a query string;
 * every other pair stays byte for byte as the client sent it.
 */
export function stripAccessToken(search: string): string {
  if (!search.includes("access_token") && !search.includes("%")) return search;
  const pairs = search.slice(1).split("&");
  const kept = pairs.filter((pair) => {
    const name = pair.split("=", 1)[0]!.replace(/\+/g, " ");
    try {
      return decodeURIComponent(name) !== "access_token";
    } catch {
      return true;
    }
  });
  if (kept.length === pairs.length) return search;
  const rest = kept.filter((p) => p !== "").join("&");
  return rest === "" ? "" : `?${rest}`;
}

export async function forward(
  req: Request,
  target: string,
  headers: HeaderRecord,
  opts: ForwardOptions,
): Promise<Response> {
  const abort = new AbortController();
  const onClientGone = () => abort.abort(new DOMException("client disconnected", "AbortError"));
  if (req.signal.aborted) onClientGone();
  else req.signal.addEventListener("abort", onClientGone, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort(new DOMException("upstream timeout", "TimeoutError"));
  }, opts.timeoutMs);

  // A body with a Content-Length (already checked against MAX_REQUEST_BODY) is bounded by
  // HTTP framing: the runtime streams it to the upstream natively, which costs far less
  // than a JS stream in between; a slow sender is then bounded by UPSTREAM_TIMEOUT, as the
  // upstream answers after reading it. A chunked body goes through the guard, which counts
  // its bytes and enforces READ_TIMEOUT.
  const hasBody = req.body !== null && req.method !== "GET" && req.method !== "HEAD" && opts.body === undefined;
  const guard = hasBody && !req.headers.has("content-length")
    ? guardBody(req.body!, opts.maxRequestBody, opts.readTimeoutMs)
    : undefined;
  const finish = () => {
    guard?.dispose();
    req.signal.removeEventListener("abort", onClientGone);
    opts.onEnd?.();
  };
  let res: Response;
  try {
    if (opts.beforeFetch) await opts.beforeFetch();
    res = await opts.fetch(target, {
      method: req.method,
      headers,
      body: opts.body ?? (guard ? guard.stream : hasBody ? req.body : null),
      redirect: "manual",
      signal: abort.signal,
      // @ts-ignore: `duplex` is required for streamed request bodies, missing from older lib types
      duplex: "half",
    });
  } catch (cause) {
    finish();
    const violation = guard?.violation();
    if (violation) throw violation;
    if (req.signal.aborted) {
      throw new RequestError("client_closed", 499, "The client went away before the upstream answered");
    }
    if (timedOut) {
      throw new UpstreamError("upstream_timeout", 504, `The upstream did not answer within ${opts.timeoutMs} ms`, {
        cause,
      });
    }
    throw new UpstreamError("upstream_unreachable", 502, "The upstream MCP server could not be reached", { cause });
  } finally {
    clearTimeout(timer);
  }

  if (res.status === 401 || res.status === 403) {
    finish();
    await res.body?.cancel().catch(() => {});
    throw new UpstreamError(
      "upstream_auth_rejected",
      502,
      `The upstream MCP server answered ${res.status}; it must not authenticate requests the gateway has verified`,
    );
  }

  const responseHeaders = clientResponseHeaders(res.headers);
  if (res.body === null || NullBodyStatus.has(res.status) || req.method === "HEAD") {
    finish();
    await res.body?.cancel().catch(() => {});
    return new Response(null, { status: res.status, statusText: res.statusText, headers: responseHeaders });
  }
  const length = Number(res.headers.get("content-length") ?? NaN);
  if (length <= NativeBodyMax && !res.headers.has("content-encoding")) {
    // A small body of fixed length: handed to the runtime to pipe natively (a JS stream in
    // between costs about half the throughput on Bun). The exchange is over for our
    // bookkeeping; the runtime finishes sending on its own.
    finish();
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers: responseHeaders });
  }
  const prime = opts.primeEventStream === true && isEventStream(res.headers.get("content-type"));
  return new Response(relay(res.body, abort, finish, prime ? SsePrime : undefined), {
    status: res.status,
    statusText: res.statusText,
    headers: responseHeaders,
  });
}

/** Passes chunks through as they come; a cancel from the client aborts the upstream. */
function relay(
  body: ReadableStream<Uint8Array>,
  abort: AbortController,
  done: () => void,
  prefix: Uint8Array | undefined,
): ReadableStream<Uint8Array> {
  const reader = chunkReader(body);
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (prefix) controller.enqueue(prefix);
    },
    async pull(controller) {
      try {
        const chunk = await reader.read();
        if (chunk === undefined) {
          done();
          controller.close();
        } else {
          controller.enqueue(chunk);
        }
      } catch (e) {
        done();
        controller.error(e);
      }
    },
    cancel(reason) {
      done();
      abort.abort(reason);
      return reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}
