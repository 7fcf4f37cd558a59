/**
 * SCOPE_RULES patterns: an exact string in which `*` matches any run of characters (`/`
 * and line breaks included, and the empty run). There is no escape: a literal `*` in a
 * name is matched by `*` itself. Compiled once at start-up into a plain function.
 */
export type Matcher = (text: string) => boolean;

/** Compiles `pattern` into a matcher. */
export function compilePattern(pattern: string): Matcher {
  if (pattern === "*") return matchAny;
  if (!pattern.includes("*")) return (text) => text === pattern;
  const parts = pattern.split("*");
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  const middle = parts.slice(1, -1).filter((p) => p !== "");
  const minLength = first.length + last.length;
  if (middle.length === 0) {
    return (text) => text.length >= minLength && text.startsWith(first) && text.endsWith(last);
  }
  return (text) => {
    if (text.length < minLength || !text.startsWith(first) || !text.endsWith(last)) return false;
    // Leftmost placement of each middle part is optimal: the stars around it absorb the rest.
    const end = text.length - last.length;
    let pos = first.length;
    for (const part of middle) {
      const at = text.indexOf(part, pos);
      if (at < 0 || at + part.length > end) return false;
      pos = at + part.length;
    }
    return true;
  };
}

function matchAny(): boolean {
  return true;
}
