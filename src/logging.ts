/**
 * JSON-line logging. A leaf module: everyone may import it, it imports nothing.
 * Callers pass fields, never tokens; `redact` is the last line of defence for values
 * that look like a bearer token or a JWT.
 */
export type Level = "debug" | "info" | "warn" | "error";
export type Fields = Record<string, unknown>;

const Rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  readonly level: Level;
  enabled(level: Level): boolean;
  log(level: Level, msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

/** A JWT-shaped run (three base64url segments), as it could only appear by mistake. */
const JwtLike = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;

export function redact(text: string): string {
  return text.includes("eyJ") ? text.replace(JwtLike, "[redacted-jwt]") : text;
}

/** Creates a logger writing one JSON object per line to `write` (stdout by default). */
export function createLogger(
  level: Level = "info",
  write: (line: string) => void = (line) => console.log(line),
  now: () => number = Date.now,
): Logger {
  const min = Rank[level];
  const log = (lvl: Level, msg: string, fields?: Fields) => {
    if (Rank[lvl] < min) return;
    const entry = { time: new Date(now()).toISOString(), level: lvl, msg, ...fields };
    write(redact(JSON.stringify(entry)));
  };
  return {
    level,
    enabled: (lvl) => Rank[lvl] >= min,
    log,
    debug: (msg, fields) => log("debug", msg, fields),
    info: (msg, fields) => log("info", msg, fields),
    warn: (msg, fields) => log("warn", msg, fields),
    error: (msg, fields) => log("error", msg, fields),
  };
}

/** A logger that drops everything (embedding, tests). */
export const silentLogger: Logger = createLogger("error", () => {});
