// Preloaded by run-tests.mjs (--import): a default timeout for every test
// (each `it`/`test` that sets none), so a hung test fails in a minute. Not
// `--test-timeout`: under `--test` that flag bounds each whole file (and every
// describe), which legitimately runs for minutes.
//
// Tests inside a describe that sets its own `timeout` inherit that one: those
// suites (crash and fault tests) budget their time as a whole. A test that
// needs longer says so with `{ timeout: ... }` and a comment saying why.
import { createRequire, syncBuiltinESMExports } from 'node:module';

export const TEST_TIMEOUT_MS = Number(process.env.TWOWAY_TEST_TIMEOUT_MS ?? 60_000);

const require = createRequire(import.meta.url);
const nodeTest = require('node:test');

let suitesWithTimeout = 0;

function split(args) {
  // (name?, options?, fn?) in any of node:test's accepted shapes
  const a = [...args];
  const name = typeof a[0] === 'string' ? a.shift() : undefined;
  const options = a[0] !== null && typeof a[0] === 'object' ? a.shift() : undefined;
  const fn = typeof a[0] === 'function' ? a.shift() : undefined;
  return { name, options, fn };
}

function wrapTest(original) {
  const wrapped = function (...args) {
    const { name, options, fn } = split(args);
    const withDefault = options?.timeout !== undefined || suitesWithTimeout > 0 ? options : { ...options, timeout: TEST_TIMEOUT_MS };
    const rebuilt = [name, withDefault, fn].filter((x) => x !== undefined);
    return original.apply(this, rebuilt);
  };
  return Object.assign(wrapped, original);
}

function wrapSuite(original) {
  const wrapped = function (...args) {
    const { name, options, fn } = split(args);
    if (options?.timeout === undefined || !fn) return original.apply(this, args);
    const counted = function (...fnArgs) {
      suitesWithTimeout++;
      try {
        return fn.apply(this, fnArgs);
      } finally {
        suitesWithTimeout--;
      }
    };
    return original.apply(this, [name, options, counted].filter((x) => x !== undefined));
  };
  return Object.assign(wrapped, original);
}

nodeTest.test = wrapTest(nodeTest.test);
nodeTest.it = wrapTest(nodeTest.it);
nodeTest.describe = wrapSuite(nodeTest.describe);
nodeTest.suite = wrapSuite(nodeTest.suite);
syncBuiltinESMExports();
