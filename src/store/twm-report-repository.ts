/**
 * Failure-report counters (docs/protocol.md 6.6; migration 0017): one row
 * per (reporting domain, UTC day, result type), incremented in place. A
 * counter is all that is kept of an event, so the table grows with the
 * number of domains and causes, never with traffic.
 */
import { sql } from 'kysely';
import type { TwmReportRepository } from './types.ts';
import { num, type Db } from './db-util.ts';

export class KyselyTwmReportRepository implements TwmReportRepository {
  constructor(private readonly s: Db) {}

  async add(entries: Array<{ domain: string; day: string; resultType: string; n: number }>): Promise<void> {
    if (entries.length === 0) return;
    await this.s.db.transaction().execute(async (tx) => {
      for (const e of entries) {
        await sql`
          INSERT INTO twm_report_counts (domain, day, result_type, count) VALUES (${e.domain.toLowerCase()}, ${e.day}, ${e.resultType}, ${e.n})
          ON CONFLICT (domain, day, result_type) DO UPDATE SET count = twm_report_counts.count + ${e.n}
        `.execute(tx);
      }
    });
  }

  async finished(day: string, limit: number): Promise<Array<{ domain: string; day: string }>> {
    return this.s.db
      .selectFrom('twm_report_counts')
      .select(['domain', 'day'])
      .distinct()
      .where('day', '<', day)
      .orderBy('day')
      .orderBy('domain')
      .limit(limit)
      .execute();
  }

  async counts(domain: string, day: string): Promise<Map<string, number>> {
    const rows = await this.s.db.selectFrom('twm_report_counts').select(['result_type', 'count']).where('domain', '=', domain).where('day', '=', day).execute();
    return new Map(rows.map((r) => [r.result_type, num(r.count)]));
  }

  async remove(domain: string, day: string): Promise<void> {
    await this.s.db.deleteFrom('twm_report_counts').where('domain', '=', domain).where('day', '=', day).execute();
  }
}
