// A recording MCP-ish upstream for black-box tests, on Deno.serve at 127.0.0.1:0.
// It records every request it receives and every stream it opens (events sent, whether
// the client went away and when), and decorates each response with headers a gateway
// must strip: Server, X-Powered-By and hop-by-hop headers.
import { sleep } from "./http.ts";

const encoder = new TextEncoder();

export interface RecordedRequest {
  method: string;
  /** Path and query as received (after Deno's URL parsing). */
  path: string;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  body: string;
  /** /slow-headers only: when the client went away before the response was sent. */
  abortedAt?: number;
}

export interface StreamRecord {
  path: string;
  /** Events enqueued so far. */
  sent: number;
  /** The upstream finished the stream by itself. */
  finished: boolean;
  /** The client (the gateway) went away: the stream was cancelled. */
  cancelled: boolean;
  cancelledAt?: number;
}

/** Headers on every upstream response that must not reach the gateway's client. */
export const UPSTREAM_LEAKY_HEADERS: Record<string, string> = {
  "server": "upstream-x",
  "x-powered-by": "x",
  "connection": "X-Upstream-Hop",
  "x-upstream-hop": "1",
  "keep-alive": "timeout=5",
  "proxy-connection": "keep-alive",
};

export const SESSION_ID = "sess-123";

/** The JSON object /gzip serves (gzip-compressed on the wire). */
export const GZIP_PAYLOAD = {
  message: "hello from a gzip upstream",
  items: Array.from({ length: 200 }, (_, i) => ({ i, text: `item number ${i}` })),
};

async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export class Upstream {
  readonly requests: RecordedRequest[] = [];
  readonly streams: StreamRecord[] = [];
  readonly url: string;
  readonly port: number;

  #server: Deno.HttpServer<Deno.NetAddr>;
  #closing = new AbortController();
  #gzipBody: Uint8Array;
  /** Open legacy /sse streams by session id. */
  #legacy = new Map<string, ReadableStreamDefaultController<Uint8Array>>();

  private constructor(gzipBody: Uint8Array) {
    this.#gzipBody = gzipBody;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
    this.port = this.#server.addr.port;
    this.url = `http://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<Upstream> {
    return new Upstream(await gzip(JSON.stringify(GZIP_PAYLOAD)));
  }

  /** Requests whose path starts with prefix. */
  received(prefix = "/"): RecordedRequest[] {
    return this.requests.filter((r) => r.path.startsWith(prefix));
  }

  reset(): void {
    this.requests.length = 0;
    this.streams.length = 0;
  }

  #headers(extra: Record<string, string> = {}): Headers {
    return new Headers({ ...UPSTREAM_LEAKY_HEADERS, "x-upstream": "ok", ...extra });
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const rec: RecordedRequest = {
      method: req.method,
      path: url.pathname + url.search,
      headers: Object.fromEntries(req.headers),
      body: "",
    };
    this.requests.push(rec);
    const q = url.searchParams;
    const path = url.pathname;

    if (path === "/echo") {
      rec.body = "(streamed back)";
      return new Response(req.body, {
        headers: this.#headers({ "content-type": req.headers.get("content-type") ?? "application/octet-stream" }),
      });
    }
    rec.body = await req.text();

    if (path === "/mcp" && req.method === "POST") {
      const msg = JSON.parse(rec.body || "{}");
      return new Response(JSON.stringify({ jsonrpc: "2.0", id: msg.id ?? null, result: {} }), {
        headers: this.#headers({
          "content-type": "application/json",
          "mcp-session-id": SESSION_ID,
          "mcp-protocol-version": "2025-11-25",
        }),
      });
    }
    if (path === "/mcp" && req.method === "GET") {
      return this.#sse(path, (emit) => {
        emit(`id: 1\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/ping"}\n\n`);
        return Promise.resolve();
      });
    }
    if (path === "/mcp" && req.method === "DELETE") {
      return new Response(null, { status: 204, headers: this.#headers() });
    }
    if (path === "/sse/slow") {
      const n = Number(q.get("n") ?? "5");
      const interval = Number(q.get("interval_ms") ?? "200");
      return this.#sse(path, async (emit, signal) => {
        for (let i = 1; i <= n; i++) {
          emit(`id: ${i}\ndata: {"i":${i}}\n\n`);
          if (i < n) await sleep(interval, signal);
        }
      });
    }
    if (path === "/sse/silent") {
      const ms = Number(q.get("ms") ?? "1000");
      return this.#sse(path, async (emit, signal) => {
        await sleep(ms, signal);
        emit(`id: 1\ndata: {"after_ms":${ms}}\n\n`);
      });
    }
    if (path === "/gzip") {
      return new Response(this.#gzipBody.slice(), {
        headers: this.#headers({
          "content-type": "application/json",
          "content-encoding": "gzip",
          "content-length": String(this.#gzipBody.length),
        }),
      });
    }
    const status = /^\/status\/(\d{3})$/.exec(path);
    if (status) {
      const code = Number(status[1]);
      const extra: Record<string, string> = { "content-type": "application/json" };
      if (code === 401) extra["www-authenticate"] = 'Bearer realm="upstream", error="invalid_token"';
      if (code === 405) extra["allow"] = "GET, POST";
      return new Response(JSON.stringify({ upstream_status: code }), { status: code, headers: this.#headers(extra) });
    }
    if (path === "/slow-headers") {
      try {
        await sleep(Number(q.get("ms") ?? "1000"), AbortSignal.any([req.signal, this.#closing.signal]));
      } catch {
        rec.abortedAt = Date.now();
        return new Response(null, { status: 499 });
      }
      return new Response("slow done", { headers: this.#headers({ "content-type": "text/plain" }) });
    }
    if (path === "/202") {
      return new Response(null, { status: 202, headers: this.#headers() });
    }
    if (path === "/sse" && req.method === "GET") {
      const session = "abc";
      return this.#sse(path, async (emit, signal, controller) => {
        this.#legacy.set(session, controller);
        emit(`event: endpoint\ndata: /messages?sessionId=${session}\n\n`);
        try {
          await sleep(60_000, signal);
        } finally {
          this.#legacy.delete(session);
        }
      });
    }
    if (path === "/messages" && req.method === "POST") {
      const stream = this.#legacy.get(q.get("sessionId") ?? "");
      if (!stream) return new Response("unknown session", { status: 404, headers: this.#headers() });
      const msg = JSON.parse(rec.body);
      stream.enqueue(encoder.encode(
        `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: msg.id, result: { echoed: msg.method } })}\n\n`,
      ));
      return new Response("Accepted", { status: 202, headers: this.#headers({ "content-type": "text/plain" }) });
    }
    return new Response(JSON.stringify({ error: "no such upstream route" }), {
      status: 404,
      headers: this.#headers({ "content-type": "application/json" }),
    });
  }

  /**
   * An SSE response driven by `run`; the record tracks events sent and whether the
   * client cancelled. The stream closes when run returns, the client leaves, or the
   * upstream shuts down.
   */
  #sse(
    path: string,
    run: (
      emit: (text: string) => void,
      signal: AbortSignal,
      controller: ReadableStreamDefaultController<Uint8Array>,
    ) => Promise<void>,
  ): Response {
    const rec: StreamRecord = { path, sent: 0, finished: false, cancelled: false };
    this.streams.push(rec);
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, this.#closing.signal]);
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        const emit = (text: string) => {
          controller.enqueue(encoder.encode(text));
          rec.sent++;
        };
        run(emit, signal, controller).then(
          () => {
            rec.finished = true;
            try {
              controller.close();
            } catch { /* the client cancelled between the last event and the end */ }
          },
          () => {
            try {
              controller.close();
            } catch { /* already cancelled */ }
          },
        );
      },
      cancel: () => {
        rec.cancelled = true;
        rec.cancelledAt = Date.now();
        stop.abort(new Error("client went away"));
      },
    });
    return new Response(body, {
      headers: this.#headers({ "content-type": "text/event-stream" }),
    });
  }

  async close(): Promise<void> {
    this.#closing.abort(new Error("upstream closing"));
    await this.#server.shutdown();
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

export const startUpstream = Upstream.start;

/** A 127.0.0.1 port with nothing listening on it (bound, then released). */
export function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
