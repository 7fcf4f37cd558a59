import { assert, assertEquals } from "@std/assert";
import { chunkReader } from "../../src/proxy/chunk_reader.ts";

/** A loopback server whose body is `parts`, each sent `gapMs` after the previous one. */
function server(parts: Uint8Array[], gapMs: number) {
  const s = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (i < parts.length) controller.enqueue(parts[i++]!);
        else controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "application/octet-stream" } });
  });
  return { url: `http://127.0.0.1:${s.addr.port}/`, close: () => s.shutdown() };
}

async function readAll(body: ReadableStream<Uint8Array>): Promise<Uint8Array[]> {
  const reader = chunkReader(body);
  const chunks: Uint8Array[] = [];
  for (let c = await reader.read(); c !== undefined; c = await reader.read()) chunks.push(c);
  return chunks;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

Deno.test("chunkReader() hands out small chunks that hold only their own bytes", async () => {
  const events = Array.from({ length: 20 }, (_, i) => new TextEncoder().encode(`data: {"i":${i}}\n\n`));
  const up = server(events, 5);
  try {
    const res = await fetch(up.url);
    const chunks = await readAll(res.body!);
    assertEquals(new TextDecoder().decode(concat(chunks)), events.map((e) => new TextDecoder().decode(e)).join(""));
    for (const c of chunks) {
      assert(
        c.buffer.byteLength <= 2 * c.byteLength,
        `a ${c.byteLength}-byte chunk holds ${c.buffer.byteLength} bytes`,
      );
    }
  } finally {
    await up.close();
  }
});

Deno.test("chunkReader() passes a large body intact, in chunks growing to 64 KiB", async () => {
  const data = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  const parts = Array.from({ length: 48 }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
  const up = server(parts, 0);
  try {
    const res = await fetch(up.url);
    const chunks = await readAll(res.body!);
    assertEquals(concat(chunks), data);
    assert(Math.max(...chunks.map((c) => c.byteLength)) >= 32768, "reads grew past the first 4 KiB");
    assert(chunks.every((c) => c.byteLength <= 65536), "no read beyond 64 KiB");
  } finally {
    await up.close();
  }
});

Deno.test("chunkReader() reads streams that are not byte streams, and cancels", async (t) => {
  await t.step("a default stream, chunks as they are", async () => {
    const parts = [new Uint8Array([1, 2]), new Uint8Array([3])];
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const p of parts) c.enqueue(p);
        c.close();
      },
    });
    assertEquals(await readAll(body), parts);
  });
  await t.step("cancel reaches the source", async () => {
    let reason: unknown;
    const body = new ReadableStream<Uint8Array>({ type: "bytes", cancel: (r) => void (reason = r) });
    await chunkReader(body).cancel("client gone");
    assertEquals(reason, "client gone");
  });
});
