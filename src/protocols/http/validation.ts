/**
 * Input validation with zod: every body, query string and path parameter
 * goes through a schema before a handler sees it, and a failure becomes a
 * 400 problem that names the offending field(s).
 */
import type { z } from 'zod';

export type InputLocation = 'body' | 'query' | 'path';

/** One invalid field, reported in the problem's `errors` extension member. */
export interface InputIssue {
  in: InputLocation;
  /** Dotted path of the field (`senders.2`), or the unknown key's name; empty for the whole input. */
  field: string;
  detail: string;
}

export class InputError extends Error {
  readonly issues: InputIssue[];
  constructor(issues: InputIssue[]) {
    super(issues.map((i) => `${i.in}${i.field ? `.${i.field}` : ''}: ${i.detail}`).join('; '));
    this.name = 'InputError';
    this.issues = issues;
  }
}

export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: InputLocation): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues: InputIssue[] = [];
  for (const issue of result.error.issues) {
    const base = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      // Name each unknown key as the field, so the client sees exactly what to remove.
      for (const key of issue.keys) issues.push({ in: where, field: base ? `${base}.${key}` : key, detail: 'Unknown field' });
    } else {
      issues.push({ in: where, field: base, detail: issue.message });
    }
  }
  throw new InputError(issues);
}
