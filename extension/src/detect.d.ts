/** Types of detect.js for the TypeScript tests. */
export interface FieldDescription {
  type?: string;
  name?: string;
  id?: string;
  autocomplete?: string;
  value?: string;
}
export interface FormDescription {
  fields: FieldDescription[];
  hints?: string;
}
export function baseAddress(value: string): string | null;
export function classifyForm(form: FormDescription, addresses: string[]): { kind: 'signup' | 'reset' | 'email-only'; address: string } | null;
export function readDeclaration(
  contents: string[],
  site: string,
  registrable: (domain: string) => string | null,
): { ok: true; from: string | null } | { ok: false; reason: string };
