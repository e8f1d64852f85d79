/**
 * Measures how fast a server keeps answering while it is attacked: one
 * authenticated HTTPS request about every `intervalMs`, one at a time over a
 * kept-alive connection (no handshake in the figure), each timed from the
 * moment it is written to its last byte. A server whose event loop stalls
 * shows the stall as one long sample; a request that gets no answer within
 * `timeoutMs` is recorded as `timeoutMs` and counted as a failure.
 */
import { Agent, request } from 'node:https';

export interface ProbeOptions {
  /** Full URL of the request, e.g. `https://127.0.0.1:1234/api/me`. */
  url: string;
  headers: Record<string, string>;
  intervalMs?: number;
  timeoutMs?: number;
  /** Also used for the method, e.g. PROPFIND; GET by default. */
  method?: string;
  body?: string;
}

export interface ProbeResult {
  samples: number[];
  max: number;
  p99: number;
  /** Answers that were not 2xx, or no answer within the timeout. */
  failures: string[];
}

export interface LatencyProbe {
  stop(): Promise<ProbeResult>;
}

export function startLatencyProbe(o: ProbeOptions): LatencyProbe {
  const interval = o.intervalMs ?? 10;
  const timeout = o.timeoutMs ?? 10_000;
  const agent = new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
  const samples: number[] = [];
  const failures: string[] = [];
  let running = true;

  const once = () =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const req = request(o.url, { method: o.method ?? 'GET', agent, headers: o.headers, timeout }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => {
          samples.push(performance.now() - started);
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 299) failures.push(`status ${status}`);
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        samples.push(Math.max(performance.now() - started, err.message === 'timeout' ? timeout : 0));
        failures.push(err.message);
        resolve();
      });
      req.end(o.body);
    });

  const loop = (async () => {
    while (running) {
      const started = performance.now();
      await once();
      const wait = interval - (performance.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();

  return {
    async stop() {
      running = false;
      await loop;
      agent.destroy();
      const sorted = [...samples].sort((a, b) => a - b);
      const p99 = sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
      return { samples, max: sorted.at(-1) ?? 0, p99, failures };
    },
  };
}
