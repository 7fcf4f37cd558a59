// Offline stand-in for jsr:@std/assert, used in CI where JSR is unreachable.
// tests/offline_import_map.json maps "@std/assert" here. Only the functions the tests
// use are provided, with the same names and call signatures as @std/assert 1.x, so the
// tests run unchanged against the real module. Built on node:assert; messages differ.
import nodeAssert from "node:assert";

export class AssertionError extends Error {
  override name = "AssertionError";
}

function failWith(msg: string | undefined, fallback: string): never {
  throw new AssertionError(msg ? `${msg}: ${fallback}` : fallback);
}

function show(v: unknown): string {
  try {
    return typeof v === "string" ? JSON.stringify(v) : Deno.inspect(v, { depth: 6 });
  } catch {
    return String(v);
  }
}

export function assert(expr: unknown, msg = ""): asserts expr {
  if (!expr) failWith(msg, "Expected value to be truthy");
}

type Falsy = false | 0 | 0n | "" | null | undefined;

export function assertFalse(expr: unknown, msg = ""): asserts expr is Falsy {
  if (expr) failWith(msg, `Expected ${show(expr)} to be falsy`);
}

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  try {
    nodeAssert.deepStrictEqual(actual, expected);
  } catch (e) {
    failWith(msg, (e as Error).message);
  }
}

export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  try {
    nodeAssert.notDeepStrictEqual(actual, expected);
  } catch {
    failWith(msg, `Expected actual: ${show(actual)} not to be: ${show(expected)}`);
  }
}

export function assertStrictEquals<T>(actual: unknown, expected: T, msg?: string): asserts actual is T {
  if (!Object.is(actual, expected)) {
    failWith(msg, `Values are not strictly equal: actual ${show(actual)}, expected ${show(expected)}`);
  }
}

export function assertExists<T>(actual: T, msg?: string): asserts actual is NonNullable<T> {
  if (actual === undefined || actual === null) {
    failWith(msg, `Expected actual: "${actual}" to not be null or undefined`);
  }
}

// deno-lint-ignore no-explicit-any
type AnyConstructor = new (...args: any[]) => any;
type GetConstructorType<T extends AnyConstructor> = InstanceType<T>;

export function assertInstanceOf<T extends AnyConstructor>(
  actual: unknown,
  expectedType: T,
  msg = "",
): asserts actual is GetConstructorType<T> {
  if (!(actual instanceof expectedType)) {
    failWith(msg, `Expected object to be an instance of "${expectedType.name}" but was ${show(actual)}`);
  }
}

export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  if (!expected.test(actual)) failWith(msg, `Expected actual: ${show(actual)} to match: "${expected}"`);
}

export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (!actual.includes(expected)) {
    failWith(msg, `Expected actual: ${show(actual)} to contain: ${show(expected)}`);
  }
}

export function assertArrayIncludes<T>(actual: ArrayLike<T>, expected: ArrayLike<T>, msg?: string): void {
  const have = Array.from(actual);
  const missing = Array.from(expected).filter((e) =>
    !have.some((a) => {
      try {
        nodeAssert.deepStrictEqual(a, e);
        return true;
      } catch {
        return false;
      }
    })
  );
  if (missing.length) failWith(msg, `Expected ${show(have)} to include ${show(missing)}`);
}

export function assertGreater<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual > expected)) failWith(msg, `Expect ${show(actual)} > ${show(expected)}`);
}

export function assertGreaterOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual >= expected)) failWith(msg, `Expect ${show(actual)} >= ${show(expected)}`);
}

export function assertLess<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual < expected)) failWith(msg, `Expect ${show(actual)} < ${show(expected)}`);
}

export function assertLessOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual <= expected)) failWith(msg, `Expect ${show(actual)} <= ${show(expected)}`);
}

export function fail(msg?: string): never {
  failWith(undefined, `Failed assertion${msg ? `: ${msg}` : "."}`);
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = abstract new (...args: any[]) => E;

function checkError<E extends Error>(
  err: unknown,
  errorClassOrMsg: ErrorClass<E> | string | undefined,
  msgIncludes: string | undefined,
  msg: string | undefined,
): E {
  if (typeof errorClassOrMsg !== "function") return err as E;
  if (!(err instanceof errorClassOrMsg)) {
    failWith(msg, `Expected error to be instance of "${errorClassOrMsg.name}", but was ${show(err)}`);
  }
  if (msgIncludes !== undefined && !String((err as Error).message).includes(msgIncludes)) {
    failWith(msg, `Expected error message to include ${show(msgIncludes)}, but got ${show((err as Error).message)}`);
  }
  return err as E;
}

export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  errorClassOrMsg?: ErrorClass<E> | string,
  msgIncludes?: string,
  msg?: string,
): E {
  const outerMsg = typeof errorClassOrMsg === "string" ? errorClassOrMsg : msg;
  try {
    fn();
  } catch (err) {
    return checkError(err, errorClassOrMsg, msgIncludes, outerMsg);
  }
  return failWith(outerMsg, "Expected function to throw.");
}

export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  errorClassOrMsg?: ErrorClass<E> | string,
  msgIncludes?: string,
  msg?: string,
): Promise<E> {
  const outerMsg = typeof errorClassOrMsg === "string" ? errorClassOrMsg : msg;
  try {
    await fn();
  } catch (err) {
    return checkError(err, errorClassOrMsg, msgIncludes, outerMsg);
  }
  return failWith(outerMsg, "Expected function to reject.");
}
