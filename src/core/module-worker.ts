/**
 * Starts a worker thread whose entry is a module of ours beside the caller's own file: built
 * (dist/), `<name>.js` in the same chunk folder (scripts/build.mjs checks that each starter
 * landed there); from the TypeScript sources (tests, `npm run twoway`), a worker does not inherit
 * the tsx loader registered in the main thread, so a small bootstrap registers it first.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** `callerUrl`: the starter's `import.meta.url`; `name`: the entry's file name without extension. */
export function startModuleWorker(callerUrl: string, name: string, options: WorkerOptions): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, callerUrl), options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL(`./${name}.ts`, callerUrl).href;
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
