// Client-side helpers for black-box tests: a raw HTTP/1.1 client over TCP (fetch
// normalises paths and refuses hop-by-hop headers), a WWW-Authenticate parser and an
// SSE event reader.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface RawResponse {
  status: number;
  /** Header lines in wire order, names lower-cased, repeats kept. */
  headerLines: [string, string][];
  headers: Headers;
  body: Uint8Array;
  text: string;
}

export interface RawRequest {
  method?: string;
  /** Sent verbatim as the request target: no normalisation, no encoding. */
  target: string;
  /** Sent verbatim and in order; Host and Connection: close are added unless given. */
  headers?: [string, string][];
  body?: string;
}

/** Serialises a request exactly as given. */
export function buildRequest(port: number, req: RawRequest): string {
  const headers = [...(req.headers ?? [])];
  const has = (name: string) => headers.some(([k]) => k.toLowerCase() === name);
  if (!has("host")) headers.unshift(["Host", `127.0.0.1:${port}`]);
  if (!has("connection")) headers.push(["Connection", "close"]);
  if (req.body !== undefined && !has("content-length")) {
    headers.push(["Content-Length", String(encoder.encode(req.body).length)]);
  }
  const head = headers.map(([k, v]) => `${k}: ${v}\r\n`).join("");
  return `${req.method ?? "GET"} ${req.target} HTTP/1.1\r\n${head}\r\n${req.body ?? ""}`;
}

/**
 * Sends one request on a fresh TCP connection and reads one response (framed by
 * Content-Length, chunked encoding, or connection close). Chunked bodies are decoded;
 * the body is otherwise returned byte for byte (no decompression).
 */
export async function rawRequest(
  port: number,
  req: RawRequest,
  { timeoutMs = 10_000 } = {},
): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  }, timeoutMs);
  try {
    await writeAll(conn, encoder.encode(buildRequest(port, req)));
    let buf: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(16 * 1024);
    let eof = false;
    for (;;) {
      const parsed = tryParseResponse(buf, eof, req.method === "HEAD");
      if (parsed) return parsed;
      if (eof) throw new Error(`Connection closed before a complete response: ${JSON.stringify(decoder.decode(buf))}`);
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch (e) {
        if (timedOut) throw new Error(`No complete response within ${timeoutMs} ms for ${req.target}`);
        // A reset after a complete response is fine; otherwise report what we have.
        n = null;
        if (!(e instanceof Deno.errors.ConnectionReset)) throw e;
      }
      if (n === null) eof = true;
      else buf = concat(buf, chunk.subarray(0, n));
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer or the peer */ }
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array) {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
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

const CRLF = [13, 10];
const CRLFCRLF = [13, 10, 13, 10];

function tryParseResponse(buf: Uint8Array, eof: boolean, head: boolean): RawResponse | null {
  const end = indexOf(buf, CRLFCRLF);
  if (end < 0) return null;
  const lines = decoder.decode(buf.subarray(0, end)).split("\r\n");
  const statusLine = lines.shift() ?? "";
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) throw new Error(`Bad status line ${JSON.stringify(statusLine)}`);
  const status = Number(m[1]);
  const headerLines: [string, string][] = lines.map((l) => {
    const i = l.indexOf(":");
    return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
  });
  const rest = buf.subarray(end + 4);
  if (status >= 100 && status < 200) return tryParseResponse(rest, eof, head);
  const headers = new Headers();
  for (const [k, v] of headerLines) headers.append(k, v);
  const done = (body: Uint8Array): RawResponse => ({ status, headerLines, headers, body, text: decoder.decode(body) });
  if (head || status === 204 || status === 304) return done(new Uint8Array(0));
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
    const body = decodeChunked(rest);
    return body ? done(body) : null;
  }
  const cl = headers.get("content-length");
  if (cl !== null) {
    const n = Number(cl);
    return rest.length >= n ? done(rest.subarray(0, n)) : null;
  }
  return eof ? done(rest) : null;
}

function decodeChunked(buf: Uint8Array): Uint8Array | null {
  const parts: Uint8Array[] = [];
  let pos = 0;
  for (;;) {
    const lineEnd = indexOf(buf, CRLF, pos);
    if (lineEnd < 0) return null;
    const size = parseInt(decoder.decode(buf.subarray(pos, lineEnd)).split(";")[0]!, 16);
    if (Number.isNaN(size)) throw new Error("Bad chunk size line");
    pos = lineEnd + 2;
    if (size === 0) {
      return indexOf(buf, CRLF, pos) < 0 ? null : parts.reduce(concat, new Uint8Array(0));
    }
    if (buf.length < pos + size + 2) return null;
    parts.push(buf.subarray(pos, pos + size));
    pos += size + 2;
  }
}

/** One challenge from a WWW-Authenticate value: scheme and its auth-params. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header value into challenges (RFC 9110 §11.6.1 grammar:
 * quoted-string or token values). Throws on anything it cannot parse, so a malformed
 * header fails the test that reads it.
 */
export function parseChallenges(value: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const ws = () => {
    while (i < value.length && /[ \t]/.test(value[i]!)) i++;
  };
  const token = () => {
    const m = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/.exec(value.slice(i));
    if (!m) return "";
    i += m[0].length;
    return m[0];
  };
  while (i < value.length) {
    ws();
    const scheme = token();
    if (!scheme) throw new Error(`Cannot parse challenge at ${i} in ${JSON.stringify(value)}`);
    const ch: Challenge = { scheme, params: {} };
    out.push(ch);
    ws();
    for (;;) {
      const save = i;
      const name = token();
      ws();
      if (!name || value[i] !== "=") {
        i = save;
        break;
      }
      i++;
      ws();
      let v: string;
      if (value[i] === '"') {
        i++;
        v = "";
        while (i < value.length && value[i] !== '"') {
          if (value[i] === "\\") i++;
          v += value[i++];
        }
        if (value[i] !== '"') throw new Error(`Unterminated quoted string in ${JSON.stringify(value)}`);
        i++;
      } else {
        v = token();
      }
      if (name.toLowerCase() in ch.params) throw new Error(`Repeated parameter ${name} in ${JSON.stringify(value)}`);
      ch.params[name.toLowerCase()] = v;
      ws();
      if (value[i] === ",") {
        i++;
        ws();
        continue;
      }
      break;
    }
    ws();
    if (i < value.length && value[i] === ",") i++;
  }
  return out;
}

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/**
 * Reads server-sent events from a response body, one at a time, each read bounded by a
 * timeout. cancel() releases the body.
 */
export class SseReader {
  #reader: ReadableStreamDefaultReader<string>;
  #buf = "";
  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next event, or null when the stream ended. */
  async next(timeoutMs = 5_000): Promise<SseEvent | null> {
    for (;;) {
      const sep = this.#buf.search(/\r?\n\r?\n/);
      if (sep >= 0) {
        const block = this.#buf.slice(0, sep);
        this.#buf = this.#buf.slice(sep).replace(/^\r?\n\r?\n/, "");
        const ev = parseEvent(block);
        if (ev) return ev;
        continue;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`No SSE event within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        const { value, done } = await Promise.race([this.#reader.read(), timeout]);
        if (done) return null;
        this.#buf += value;
      } finally {
        clearTimeout(timer);
      }
    }
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

function parseEvent(block: string): SseEvent | null {
  const ev: SseEvent = { data: "" };
  const data: string[] = [];
  let any = false;
  for (const line of block.split(/\r?\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    any = true;
    if (field === "data") data.push(val);
    else if (field === "id") ev.id = val;
    else if (field === "event") ev.event = val;
  }
  if (!any) return null;
  ev.data = data.join("\n");
  return ev;
}

/** A User-Agent unique to one request, to find its access-log line. */
export function uniqueUserAgent(label = "e2e"): string {
  return `${label}/${crypto.randomUUID()}`;
}

/** Resolves after ms, or rejects early when signal aborts; never leaves a timer behind. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Polls cond every 20 ms until it is truthy or timeoutMs passes; returns the last value. */
export async function waitFor<T>(cond: () => T, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = cond();
  while (!v && Date.now() < deadline) {
    await sleep(20);
    v = cond();
  }
  return v;
}
