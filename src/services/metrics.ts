/**
 * Prometheus metrics (prom-client), one registry per server so that several
 * servers in one process (tests, the demo) keep their own counts. Served by
 * the HTTP listener at GET /metrics (plain text exposition format).
 */
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(options: { defaults?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaults) collectDefaultMetrics({ register: registry });
  const twmRefused = new Counter({
    name: 'twoway_twm_refused_total',
    help: 'TWM requests refused, by endpoint and twm_error code',
    labelNames: ['endpoint', 'code'] as const,
    registers: [registry],
  });
  const twmFetched = new Counter({
    name: 'twoway_twm_fetch_total',
    help: 'TWM fetches made as a recipient, by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  return { registry, twmRefused, twmFetched };
}

export type Metrics = ReturnType<typeof createMetrics>;
