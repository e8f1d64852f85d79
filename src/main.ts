/**
 * The server's entry for callers that want everything running: a thin
 * wrapper over the composition root, src/app.ts (`createApp(config).start()`).
 */
export { createApp, createLogger, startServer, type App, type AppOptions, type RunningServer } from './app.ts';
export { isSupervisedWorker, runSupervisor, runWorker } from './supervisor.ts';
