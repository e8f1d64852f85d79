/**
 * Prometheus metrics (prom-client), one registry per server so that several
 * servers in one process (tests, the demo) keep their own counts. Served by
 * the HTTP listener at GET /metrics (plain text exposition format).
 *
 * prom-client (with its OpenTelemetry dependency) is loaded on first use,
 * not at import: every CLI command builds the application, and only a
 * running server counts anything.
 */
import { createRequire } from 'node:module';
import type { Counter, Registry } from 'prom-client';

type PromClient = typeof import('prom-client');

export interface Metrics {
  readonly registry: Registry;
  readonly twmRefused: Counter<'endpoint' | 'code'>;
  readonly twmFetched: Counter<'outcome'>;
}

export function createMetrics(options: { defaults?: boolean } = {}): Metrics {
  let built: Metrics | undefined;
  const build = (): Metrics => {
    if (built) return built;
    // createRequire: a synchronous load on first use (prom-client is CommonJS).
    const prom = createRequire(import.meta.url)('prom-client') as PromClient;
    const registry = new prom.Registry();
    if (options.defaults) prom.collectDefaultMetrics({ register: registry });
    const twmRefused = new prom.Counter({
      name: 'twoway_twm_refused_total',
      help: 'TWM requests refused, by endpoint and twm_error code',
      labelNames: ['endpoint', 'code'] as const,
      registers: [registry],
    });
    const twmFetched = new prom.Counter({
      name: 'twoway_twm_fetch_total',
      help: 'TWM fetches made as a recipient, by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    built = { registry, twmRefused, twmFetched };
    return built;
  };
  return {
    get registry() {
      return build().registry;
    },
    get twmRefused() {
      return build().twmRefused;
    },
    get twmFetched() {
      return build().twmFetched;
    },
  };
}
