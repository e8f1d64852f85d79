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

  async count(domain: string, day: string, resultType: string): Promise<void> {
    await sql`
      INSERT INTO twm_report_counts (domain, day, result_type, count) VALUES (${domain.toLowerCase()}, ${day}, ${resultType}, 1)
      ON CONFLICT (domain, day, result_type) DO UPDATE SET count = twm_report_counts.count + 1
    `.execute(this.s.db);
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
