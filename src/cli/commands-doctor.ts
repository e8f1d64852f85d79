/** `twoway doctor`: prints the checks of src/doctor, one line each; exit 1 when one fails. */
import type { Command } from 'commander';
import { readConfig, type GlobalOptions } from './context.ts';
import { CliError, EXIT, printJson, type CliIo } from './output.ts';

const MARK = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;

export function registerDoctorCommand(program: Command, io: CliIo): void {
  program
    .command('doctor')
    .description('check the deployment: DNS records, keys against DNS, TLS certificates, listeners')
    .option('--json', 'machine-readable output')
    .option('--timeout <ms>', 'how long to wait for each listener', '3000')
    .action(async (opts: { json?: boolean; timeout: string }, cmd: Command) => {
      const timeout = Number(opts.timeout);
      if (!Number.isInteger(timeout) || timeout < 1) throw new CliError(`invalid --timeout "${opts.timeout}": expected milliseconds`, EXIT.usage);
      const config = await readConfig(cmd.optsWithGlobals<GlobalOptions>());
      const [{ ensureMaterials }, { createResolver }, { runDoctor }] = await Promise.all([import('../config/materials.ts'), import('../dns/resolver.ts'), import('../doctor/index.ts')]);
      const resolver = createResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeoutMs, cacheTtlCapSeconds: 0 });
      const results = await runDoctor(config, ensureMaterials(config), { resolver, connectTimeoutMs: timeout });
      if (opts.json) printJson(io.stdout, results);
      else for (const r of results) io.stdout.write(`${MARK[r.status]}  ${r.check}: ${r.detail}${r.fix ? ` -> ${r.fix}` : ''}\n`);
      const failed = results.filter((r) => r.status === 'fail').length;
      if (failed > 0) throw new CliError(`${failed} check${failed === 1 ? '' : 's'} failed`, EXIT.failure);
    });
}
