// Preload (node --require) for src/core/ed25519.test.ts: makes `sodium-native` unresolvable, as on a
// platform where the optional package has no prebuilt binary, so the node:crypto fallback runs.
const Module = require('node:module');
const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === 'sodium-native') throw Object.assign(new Error(`Cannot find module '${request}'`), { code: 'MODULE_NOT_FOUND' });
  return load.call(this, request, ...rest);
};
