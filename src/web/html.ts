/**
 * The web app's only way to make HTML: a tagged template in which every
 * interpolated value is escaped, unless it is itself the result of `html`
 * (already safe) or an array of such results. There is no "raw string"
 * escape hatch: markup comes from template literals in this folder only.
 */

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Escapes text for an element's content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

/** Markup known to be safe: only `html` makes one. */
export class SafeHtml {
  readonly #value: string;
  private constructor(value: string) {
    this.#value = value;
  }
  toString(): string {
    return this.#value;
  }
  /** @internal for `html` only. */
  static fromTemplate(value: string): SafeHtml {
    return new SafeHtml(value);
  }
}

/** What may be interpolated: text (escaped), numbers, safe markup, lists of those; null, undefined and false render nothing. */
export type Interpolation = string | number | SafeHtml | null | undefined | false | readonly Interpolation[];

function render(value: Interpolation): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.toString();
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: Interpolation[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return SafeHtml.fromTemplate(out);
}
