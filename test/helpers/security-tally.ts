/**
 * Counts the cases of a security battery (test/security-*.test.ts). Each
 * case records whether the attack was refused, and asserts it; the battery's
 * last test prints `security (AREA): N cases, N refused` and fails if the
 * two differ or nothing ran.
 */
import assert from 'node:assert/strict';

export class SecurityTally {
  readonly area: string;
  readonly #cases: Array<{ name: string; refused: boolean; detail: string }> = [];

  constructor(area: string) {
    this.area = area;
  }

  /** Records a case and asserts that it was refused. */
  expectRefused(name: string, refused: boolean, detail = ''): void {
    this.#cases.push({ name, refused, detail });
    assert.ok(refused, `security case not refused: ${name}${detail ? `\n${detail}` : ''}`);
  }

  get cases(): number {
    return this.#cases.length;
  }

  get refused(): number {
    return this.#cases.filter((c) => c.refused).length;
  }

  summary(): string {
    return `security (${this.area}): ${this.cases} cases, ${this.refused} refused`;
  }

  /** Prints the summary (stdout and a test diagnostic) and asserts every case was refused. */
  report(diagnostic: (line: string) => void): void {
    const line = this.summary();
    diagnostic(line);
    process.stdout.write(`${line}\n`);
    assert.ok(this.cases > 0, `no ${this.area} cases ran`);
    assert.equal(this.refused, this.cases, this.#cases.filter((c) => !c.refused).map((c) => c.name).join(', '));
  }
}
