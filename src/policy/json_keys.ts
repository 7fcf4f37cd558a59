/**
 * Finds a JSON-RPC key given twice in one object, which JSON.parse hides: it silently keeps
 * the last one, while other parsers keep the first or refuse, so the gateway and the
 * upstream could read different methods or tools from the same bytes.
 *
 * Watched keys: `method` and `params` of each message (the top-level object, or each object
 * element of a top-level array), and `name` and `uri` of a message's `params` object. Keys
 * are compared after JSON unescaping (`"\u006dethod"` is `method`).
 *
 * Expects text that JSON.parse accepted: it walks the structure without validating it.
 */
export interface DuplicateKey {
  /** Index of the message in the batch (0 for a single message). */
  index: number;
  key: "method" | "params" | "name" | "uri";
}

const Structural = /["{}[\]]/g;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

class Walker {
  pos = 0;
  constructor(readonly text: string) {}

  skipSpace(): void {
    while (isSpace(this.text.charCodeAt(this.pos))) this.pos++;
  }

  /** At an opening quote: moves past the closing one and returns the raw string, quotes included. */
  rawString(): string {
    const start = this.pos;
    let i = start + 1;
    for (;;) {
      const q = this.text.indexOf('"', i);
      let backslashes = 0;
      while (this.text.charCodeAt(q - 1 - backslashes) === 0x5c) backslashes++;
      i = q + 1;
      if (backslashes % 2 === 0) break;
    }
    this.pos = i;
    return this.text.slice(start, i);
  }

  key(): string {
    const raw = this.rawString();
    return raw.includes("\\") ? JSON.parse(raw) as string : raw.slice(1, -1);
  }

  /** Moves past one value of any kind. */
  skipValue(): void {
    const c = this.text.charCodeAt(this.pos);
    if (c === 0x22) {
      this.rawString();
      return;
    }
    if (c !== 0x7b && c !== 0x5b) {
      // A number or a literal: up to the next delimiter.
      while (this.pos < this.text.length) {
        const d = this.text.charCodeAt(this.pos);
        if (d === 0x2c || d === 0x7d || d === 0x5d || isSpace(d)) break;
        this.pos++;
      }
      return;
    }
    let depth = 0;
    Structural.lastIndex = this.pos;
    for (;;) {
      const m = Structural.exec(this.text);
      if (m === null) {
        this.pos = this.text.length;
        return;
      }
      const ch = m[0];
      if (ch === '"') {
        this.pos = m.index;
        this.rawString();
        Structural.lastIndex = this.pos;
      } else if (ch === "{" || ch === "[") {
        depth++;
      } else if (--depth === 0) {
        this.pos = m.index + 1;
        return;
      }
    }
  }

  /**
   * At `{`: walks the members, calling `onMember(key)` before each value; `onMember` returns
   * true when it consumed the value itself. Stops early when `onMember` returns a string.
   */
  members(onMember: (key: string) => boolean | string): string | undefined {
    this.pos++;
    this.skipSpace();
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return undefined;
    }
    for (;;) {
      this.skipSpace();
      const key = this.key();
      this.skipSpace();
      this.pos++; // ':'
      this.skipSpace();
      const r = onMember(key);
      if (typeof r === "string") return r;
      if (!r) this.skipValue();
      this.skipSpace();
      if (this.text.charCodeAt(this.pos++) === 0x7d) return undefined; // '}' ends, ',' continues
    }
  }

  /** A message object: a duplicate watched key, if any. */
  message(): DuplicateKey["key"] | undefined {
    let method = false;
    let params = false;
    const dup = this.members((key) => {
      if (key === "method") {
        if (method) return "method";
        method = true;
      } else if (key === "params") {
        if (params) return "params";
        params = true;
        if (this.text.charCodeAt(this.pos) === 0x7b) return this.params() ?? true;
      }
      return false;
    });
    return dup as DuplicateKey["key"] | undefined;
  }

  params(): string | undefined {
    let name = false;
    let uri = false;
    return this.members((key) => {
      if (key === "name") {
        if (name) return "name";
        name = true;
      } else if (key === "uri") {
        if (uri) return "uri";
        uri = true;
      }
      return false;
    });
  }
}

const Watched = ['"method"', '"params"', '"name"', '"uri"'];

/**
 * Without a backslash no key is escaped, so a key given twice appears twice as quoted text:
 * when none of the watched keys does, there is nothing to walk.
 */
function cannotRepeat(text: string): boolean {
  if (text.includes("\\")) return false;
  for (const k of Watched) {
    const at = text.indexOf(k);
    if (at !== -1 && text.indexOf(k, at + 1) !== -1) return false;
  }
  return true;
}

/** The first watched key given twice, in document order; undefined when there is none. */
export function findDuplicateKey(text: string): DuplicateKey | undefined {
  if (cannotRepeat(text)) return undefined;
  const w = new Walker(text);
  w.skipSpace();
  const c = text.charCodeAt(w.pos);
  if (c === 0x7b) {
    const key = w.message();
    return key === undefined ? undefined : { index: 0, key };
  }
  if (c !== 0x5b) return undefined;
  w.pos++;
  for (let index = 0;; index++) {
    w.skipSpace();
    const d = text.charCodeAt(w.pos);
    if (d === 0x5d) return undefined;
    if (d === 0x7b) {
      const key = w.message();
      if (key !== undefined) return { index, key };
    } else {
      w.skipValue();
    }
    w.skipSpace();
    if (text.charCodeAt(w.pos++) === 0x5d) return undefined;
  }
}
