/**
 * Reads a response body chunk by chunk without holding more memory than the data.
 *
 * Deno's fetch hands out every chunk as a view on a fresh 64 KiB buffer: a 30-byte SSE
 * event keeps 64 KiB alive until it has been written and collected, and each stream's
 * waiting read holds another 64 KiB, about 150 KiB per quiet open stream (1,000 streams:
 * 150–270 MiB of buffers). Where the body is a byte stream (Deno), this reads into a buffer
 * of the stream's own instead, sized to what arrives: 4 KiB at first, doubled while reads
 * fill it (up to 64 KiB), halved while they stay small. A small chunk is copied out at its
 * size and the buffer reused; a mostly full one is handed on as it is. Elsewhere (Bun, whose
 * chunks are already their own size) the default reader is used.
 */

export interface ChunkReader {
  /** The next chunk; undefined at the end of the body. */
  read(): Promise<Uint8Array | undefined>;
  cancel(reason?: unknown): Promise<void>;
}

const MinBuffer = 4096;
const MaxBuffer = 65_536;

export function chunkReader(body: ReadableStream<Uint8Array>): ChunkReader {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream.
  }
  if (byob === undefined) {
    const reader = body.getReader();
    return {
      read: async () => {
        const { done, value } = await reader.read();
        return done ? undefined : value;
      },
      cancel: (reason) => reader.cancel(reason),
    };
  }
  const reader = byob;
  let buffer = new ArrayBuffer(MinBuffer);
  return {
    async read() {
      for (;;) {
        const { done, value } = await reader.read(new Uint8Array(buffer));
        if (done || value === undefined) return undefined;
        const n = value.byteLength;
        const size = value.buffer.byteLength;
        if (n === 0) {
          buffer = value.buffer as ArrayBuffer;
          continue;
        }
        if (n * 2 >= size) {
          buffer = new ArrayBuffer(n === size ? Math.min(size * 2, MaxBuffer) : size);
          return value;
        }
        buffer = n * 4 <= size && size > MinBuffer ? new ArrayBuffer(size / 2) : value.buffer as ArrayBuffer;
        return value.slice();
      }
    },
    cancel: (reason) => reader.cancel(reason),
  };
}
