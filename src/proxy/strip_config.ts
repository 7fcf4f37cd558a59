/**
 * STRIP_REQUEST_HEADERS: more client request headers that never reach the upstream, on top
 * of the built-in identity headers (src/proxy/headers.ts). A comma list of header names
 * and `Prefix-*` patterns, any case; kept lower-case, a pattern with its trailing `*`.
 */
import type { EnvReader } from "../env_reader.ts";

/** An RFC 9110 token without `*`, which ends a prefix pattern instead. */
const NameOrPrefix = /^[A-Za-z0-9!#$%&'+.^_`|~-]+\*?$/;

export const StripRequestHeadersVariable = {
  name: "STRIP_REQUEST_HEADERS",
  default: "",
  meaning: "more client headers never forwarded (comma list; Prefix-* allowed)",
} as const;

export function readStripRequestHeaders(r: EnvReader): string[] {
  const name = StripRequestHeadersVariable.name;
  const items = r.list(name);
  const bad = items.filter((item) => !NameOrPrefix.test(item));
  if (bad.length > 0) {
    r.problem(
      name,
      `expected header names or Prefix-* patterns, comma-separated; not one: ${
        bad.map((b) => JSON.stringify(b)).join(", ")
      }`,
    );
  }
  return [...new Set(items.filter((item) => NameOrPrefix.test(item)).map((item) => item.toLowerCase()))];
}
