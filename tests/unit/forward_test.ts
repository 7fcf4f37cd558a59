import { assertEquals } from "@std/assert";
import { forward } from "../../src/proxy/forward.ts";

/** A loopback upstream answering every request with `contentType` and a body that sends `first` (if any), then stays quiet. */
function quietUpstream(contentType: string, first: string | null) {
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        streams.add(controller);
        if (first !== null) controller.enqueue(new TextEncoder().encode(first));
      },
      cancel() {},
    });
    return new Response(body, { headers: { "content-type": contentType } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/stream`,
    async close() {
      for (const c of streams) {
        try {
          c.close();
        } catch { /* cancelled */ }
      }
      await server.shutdown();
    },
  };
}

async function firstChunk(body: ReadableStream<Uint8Array>, ms: number): Promise<string | null> {
  const reader = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
  try {
    const r = await Promise.race([reader.read(), timeout]);
    return r === null || r.done ? null : new TextDecoder().decode(r.value);
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}

Deno.test("forward() primes a quiet event stream whatever the media type's case", async (t) => {
  const cases: { description: string; input: { type: string; first: string | null }; expected: string }[] = [
    { description: "text/event-stream", input: { type: "text/event-stream", first: null }, expected: ":\n\n" },
    {
      description: "Text/Event-Stream with a parameter",
      input: { type: "Text/Event-Stream; charset=utf-8", first: null },
      expected: ":\n\n",
    },
    { description: "upper case", input: { type: "TEXT/EVENT-STREAM", first: null }, expected: ":\n\n" },
    { description: "not an event stream: no prime", input: { type: "application/json", first: "{" }, expected: "{" },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      const upstream = quietUpstream(input.type, input.first);
      try {
        const res = await forward(new Request("http://gateway.test/stream"), upstream.url, {}, {
          fetch: globalThis.fetch.bind(globalThis),
          timeoutMs: 5_000,
          maxRequestBody: 1024,
          readTimeoutMs: 5_000,
          primeEventStream: true,
        });
        assertEquals(res.status, 200);
        assertEquals(res.headers.get("x-accel-buffering"), expected === ":\n\n" ? "no" : null);
        assertEquals(await firstChunk(res.body!, 3_000), expected);
      } finally {
        await upstream.close();
      }
    });
  }
});

Deno.test("forward() relays small events without holding a large buffer for each", async () => {
  const events = Array.from({ length: 10 }, (_, i) => `id: ${i}\ndata: {"i":${i}}\n\n`);
  let sent = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((r) => setTimeout(r, 5));
        if (sent < events.length) controller.enqueue(new TextEncoder().encode(events[sent++]!));
        else controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  try {
    const res = await forward(new Request("http://gateway.test/sse"), `http://127.0.0.1:${server.addr.port}/sse`, {}, {
      fetch: globalThis.fetch.bind(globalThis),
      timeoutMs: 5_000,
      maxRequestBody: 1024,
      readTimeoutMs: 5_000,
    });
    const chunks: Uint8Array[] = [];
    for await (const c of res.body!) chunks.push(c);
    assertEquals(
      new TextDecoder().decode(new Uint8Array(await new Blob(chunks as BlobPart[]).arrayBuffer())),
      events.join(""),
    );
    // Deno's fetch gives each chunk its own 64 KiB buffer; relayed as they are, 1,000 quiet
    // streams held 150–270 MiB of them.
    const held = chunks.map((c) => c.buffer.byteLength);
    const bytes = chunks.map((c) => c.byteLength);
    assertEquals(held.filter((h, i) => h > 2 * bytes[i]!), [], `buffers held ${held} for chunks of ${bytes}`);
  } finally {
    await server.shutdown();
  }
});
