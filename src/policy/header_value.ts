/**
 * MCP request metadata header values (2026-07-28): a value that is unsafe as header text is
 * sent as `=?base64?<standard base64 of its UTF-8 bytes>?=`. Anything else is taken as is.
 */
const Prefix = "=?base64?";
const Suffix = "?=";
const Base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const Utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The value a header carries: the decoded text of the base64 form, or the value itself.
 * undefined when the base64 form is malformed (not canonical base64, or not UTF-8): such
 * a header can agree with no body.
 */
export function decodeHeaderValue(value: string): string | undefined {
  if (!value.startsWith(Prefix) || !value.endsWith(Suffix) || value.length < Prefix.length + Suffix.length) {
    return value;
  }
  const encoded = value.slice(Prefix.length, value.length - Suffix.length);
  if (!Base64.test(encoded)) return undefined;
  const binary = atob(encoded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  try {
    return Utf8.decode(bytes);
  } catch {
    return undefined;
  }
}
