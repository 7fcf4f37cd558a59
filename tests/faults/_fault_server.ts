// A raw HTTP/1.1 server over TCP for fault injection: the handler gets the parsed
// request head and the connection itself, so it can answer normally, stall, trickle,
// lie about Content-Length, stop mid-body, or drop the connection. Every response is
// sent with Connection: close, so once the gateway is done with an exchange the
// connection ends; `open` is then an exact count of connections the gateway still holds.
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface FaultRequest {
  method: string;
  /** Request target as sent (path and query). */
  target: string;
  path: string;
  headers: Headers;
  conn: Deno.Conn;
  /** Bytes already read past the head (the start of the body). */
  rest: Uint8Array;
  /** Aborted when the server closes. */
  signal: AbortSignal;
}

export type FaultHandler = (req: FaultRequest) => Promise<void>;

export class FaultServer {
  readonly port: number;
  readonly origin: string;
  handler: FaultHandler;
  /** Connections accepted so far. */
  accepted = 0;
  /** Requests per path. */
  readonly hits = new Map<string, number>();
  #listener: Deno.Listener;
  #conns = new Set<Deno.Conn>();
  #tasks = new Set<Promise<void>>();
  #closing = new AbortController();
  #accepting: Promise<void>;

  constructor(handler: FaultHandler) {
    this.handler = handler;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.origin = `http://127.0.0.1:${this.port}`;
    this.#accepting = this.#accept();
  }

  /** Connections currently open (accepted and not yet closed by either side). */
  get open(): number {
    return this.#conns.size;
  }

  hitsOf(path: string): number {
    return this.hits.get(path) ?? 0;
  }

  async #accept() {
    // accept() also fails for a connection reset while still queued (ECONNABORTED, as
    // when a client aborts right after connecting); only a closed listener ends the loop.
    while (!this.#closing.signal.aborted) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#closing.signal.aborted || e instanceof Deno.errors.BadResource) return;
        continue;
      }
      this.accepted++;
      this.#conns.add(conn);
      const task = this.#serve(conn).finally(() => {
        this.#conns.delete(conn);
        this.#tasks.delete(task);
      });
      this.#tasks.add(task);
    }
  }

  async #serve(conn: Deno.Conn) {
    try {
      let buf: Uint8Array = new Uint8Array(0);
      const chunk = new Uint8Array(16 * 1024);
      let end = -1;
      while ((end = indexOf(buf, CRLFCRLF)) < 0) {
        const n = await conn.read(chunk);
        if (n === null || buf.length > 256 * 1024) return;
        buf = concat(buf, chunk.subarray(0, n));
      }
      const [requestLine = "", ...lines] = decoder.decode(buf.subarray(0, end)).split("\r\n");
      const [method = "", target = ""] = requestLine.split(" ");
      const headers = new Headers();
      for (const l of lines) {
        const i = l.indexOf(":");
        if (i > 0) headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
      }
      const path = target.split("?")[0]!;
      this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
      await this.handler({
        method,
        target,
        path,
        headers,
        conn,
        rest: buf.subarray(end + 4),
        signal: this.#closing.signal,
      });
    } catch {
      /* the peer went away, or the handler dropped the connection */
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }

  async close(): Promise<void> {
    this.#closing.abort(new Error("fault server closing"));
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    await this.#accepting;
    await Promise.all([...this.#tasks]);
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

export async function writeAll(conn: Deno.Conn, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** The response head; `headers` as given (add content-length or transfer-encoding yourself). */
export function head(status: number, headers: Record<string, string | number> = {}): string {
  let out = `HTTP/1.1 ${status} ${status === 200 ? "OK" : "X"}\r\n`;
  for (const [k, v] of Object.entries({ connection: "close", ...headers })) out += `${k}: ${v}\r\n`;
  return out + "\r\n";
}

/** A complete response with Content-Length. */
export async function respond(
  conn: Deno.Conn,
  status: number,
  body: string | Uint8Array,
  headers: Record<string, string | number> = {},
): Promise<void> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  await writeAll(conn, concat(encoder.encode(head(status, { "content-length": bytes.length, ...headers })), bytes));
}

export function json(conn: Deno.Conn, body: unknown, status = 200): Promise<void> {
  return respond(conn, status, JSON.stringify(body), { "content-type": "application/json" });
}

/** One chunk of a chunked body. */
export function chunk(data: string | Uint8Array): Uint8Array {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return concat(encoder.encode(`${bytes.length.toString(16)}\r\n`), concat(bytes, encoder.encode("\r\n")));
}

export interface BodyOutcome {
  /** Body bytes received. */
  bytes: number;
  /** The body ended as framed (Content-Length reached, or the last chunk). */
  complete: boolean;
  /** The connection ended (EOF or reset) before the body was complete. */
  cutAt?: number;
}

/**
 * Reads a request body framed by Content-Length or chunked encoding, counting bytes, until
 * it is complete or the connection ends. Never throws.
 */
export async function readBody(req: FaultRequest, onProgress?: (bytes: number) => void): Promise<BodyOutcome> {
  const chunked = /chunked/i.test(req.headers.get("transfer-encoding") ?? "");
  const length = Number(req.headers.get("content-length") ?? "0");
  let buf: Uint8Array = req.rest;
  let bytes = 0;
  const scratch = new Uint8Array(64 * 1024);
  const more = async (): Promise<boolean> => {
    try {
      const n = await req.conn.read(scratch);
      if (n === null) return false;
      buf = concat(buf, scratch.subarray(0, n));
      return true;
    } catch {
      return false;
    }
  };
  if (!chunked) {
    bytes = Math.min(buf.length, length);
    onProgress?.(bytes);
    while (bytes < length) {
      buf = new Uint8Array(0);
      if (!(await more())) return { bytes, complete: false, cutAt: performance.now() };
      bytes = Math.min(length, bytes + buf.length);
      onProgress?.(bytes);
    }
    return { bytes, complete: true };
  }
  for (;;) {
    let line: number;
    while ((line = indexOf(buf, CRLF)) < 0) {
      if (!(await more())) return { bytes, complete: false, cutAt: performance.now() };
    }
    const size = parseInt(decoder.decode(buf.subarray(0, line)).split(";")[0]!, 16);
    if (Number.isNaN(size)) return { bytes, complete: false, cutAt: performance.now() };
    buf = buf.subarray(line + 2);
    if (size === 0) return { bytes, complete: true };
    while (buf.length < size + 2) {
      const have = Math.min(buf.length, size);
      if (!(await more())) return { bytes: bytes + have, complete: false, cutAt: performance.now() };
    }
    bytes += size;
    onProgress?.(bytes);
    buf = buf.subarray(size + 2);
  }
}

const CRLF = [13, 10];
const CRLFCRLF = [13, 10, 13, 10];

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOf(buf: Uint8Array, seq: number[], from = 0): number {
  outer: for (let i = from; i <= buf.length - seq.length; i++) {
    for (let j = 0; j < seq.length; j++) if (buf[i + j] !== seq[j]) continue outer;
    return i;
  }
  return -1;
}
