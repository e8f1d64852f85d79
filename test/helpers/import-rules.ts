/**
 * The layering rule of docs/architecture.md ("Layers and the import rule"),
 * read from the document itself and checked against every import in src/.
 * The document is the one place the rule lives: the tables between the
 * `import-rules` markers are parsed here, so changing what a folder may
 * import means changing the document.
 *
 * Rules table, one row per folder (or top-level file) of src/:
 *   | `folder/` | may import | only types from | packages |
 * - "may import" and "only types from": backticked folders (`core`) or files
 *   (`store/types.ts`) under src/, `nothing`, or `any except …`; a folder
 *   may always import from itself.
 * - "packages": backticked npm package names and `node:` built-ins;
 *   `node:*` allows every built-in.
 * Exceptions table, known violations that are allowed until fixed:
 *   | `file or folder` | `target`, … | why |
 * An exception no import needs any more is reported too (the list must shrink).
 * Test files (`*.test.ts`) are not checked: a test may assemble any layers.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, normalize, relative, dirname, sep } from 'node:path';
import ts from 'typescript';

export interface Rule {
  /** `core/` (a folder) or `main.ts` (a file), relative to src/. */
  scope: string;
  /** null: anything (minus `except`). */
  values: string[] | null;
  types: string[];
  except: string[];
  /** null: any package. */
  packages: string[] | null;
}

export interface Exception {
  from: string;
  to: string[];
}

export interface ImportRules {
  rules: Rule[];
  exceptions: Exception[];
}

export interface ImportEdge {
  /** The importing file, relative to src/ (posix separators). */
  file: string;
  /** Relative to src/ for a src/ file (`store/types.ts`), else the bare specifier (`kysely`, `node:fs`). */
  target: string;
  internal: boolean;
  typeOnly: boolean;
  line: number;
}

const START = '<!-- import-rules:start -->';
const END = '<!-- import-rules:end -->';

/** Parses the two tables between the markers of the architecture document. */
export function parseImportRules(markdown: string): ImportRules {
  const start = markdown.indexOf(START);
  const end = markdown.indexOf(END);
  if (start < 0 || end < start) throw new Error(`the architecture document lacks ${START} … ${END}`);
  const rows = markdown
    .slice(start + START.length, end)
    .split('\n')
    .filter((l) => l.trim().startsWith('|') && !/^\|\s*-/.test(l.trim()))
    .map((l) => splitRow(l));
  const rules: Rule[] = [];
  const exceptions: Exception[] = [];
  let table: 'rules' | 'exceptions' | null = null;
  for (const cells of rows) {
    const head = cells[0]!.toLowerCase();
    if (head === 'folder') {
      table = 'rules';
      continue;
    }
    if (head === 'file or folder') {
      table = 'exceptions';
      continue;
    }
    if (table === 'rules') {
      if (cells.length !== 4) throw new Error(`import rule row needs 4 cells: | ${cells.join(' | ')} |`);
      const scope = single(cells[0]!);
      const may = parseTargets(cells[1]!);
      rules.push({
        scope,
        values: may.any ? null : may.list,
        types: parseTargets(cells[2]!).list,
        except: may.except,
        packages: /^any\b/.test(cells[3]!) ? null : ticks(cells[3]!),
      });
    } else if (table === 'exceptions') {
      if (cells.length !== 3) throw new Error(`exception row needs 3 cells: | ${cells.join(' | ')} |`);
      exceptions.push({ from: single(cells[0]!), to: ticks(cells[1]!) });
    } else {
      throw new Error(`a table between the import-rules markers must start with a "folder" or "file or folder" header`);
    }
  }
  if (rules.length === 0) throw new Error('no import rules found between the markers');
  return { rules, exceptions };
}

function splitRow(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((c) => c.trim());
}

function ticks(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}

function single(cell: string): string {
  const t = ticks(cell);
  if (t.length !== 1) throw new Error(`expected one backticked path in "${cell}"`);
  return t[0]!;
}

function parseTargets(cell: string): { any: boolean; list: string[]; except: string[] } {
  if (/^any\b/.test(cell)) return { any: true, list: [], except: ticks(cell) };
  return { any: false, list: ticks(cell), except: [] };
}

/** Whether `path` (relative to src/) is `token` or lies under it: `core` and `core/` name the folder. */
export function covers(token: string, path: string): boolean {
  const t = token.replace(/\/$/, '');
  return path === t || path.startsWith(`${t}/`);
}

export function ruleFor(rules: Rule[], file: string): Rule | null {
  let best: Rule | null = null;
  for (const r of rules) if (covers(r.scope, file) && (!best || r.scope.length > best.scope.length)) best = r;
  return best;
}

/** Every import, export-from, dynamic import() with a literal and `import('…')` type of one file. */
export function importsOf(srcRoot: string, file: string, text: string): ImportEdge[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: ImportEdge[] = [];
  const add = (spec: string, typeOnly: boolean, node: ts.Node) => {
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
    if (spec.startsWith('.')) {
      const abs = normalize(join(dirname(join(srcRoot, file)), spec));
      out.push({ file, target: relative(srcRoot, abs).split(sep).join('/'), internal: true, typeOnly, line });
    } else {
      out.push({ file, target: packageName(spec), internal: false, typeOnly, line });
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const c = node.importClause;
      const typeOnly =
        c !== undefined &&
        (c.isTypeOnly ||
          (c.name === undefined &&
            c.namedBindings !== undefined &&
            ts.isNamedImports(c.namedBindings) &&
            c.namedBindings.elements.length > 0 &&
            c.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier.text, typeOnly, node);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const typeOnly =
        node.isTypeOnly ||
        (node.exportClause !== undefined && ts.isNamedExports(node.exportClause) && node.exportClause.elements.length > 0 && node.exportClause.elements.every((e) => e.isTypeOnly));
      add(node.moduleSpecifier.text, typeOnly, node);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      add(node.moduleReference.expression.text, node.isTypeOnly, node);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      // A computed specifier (smtp-server-internals.ts loads a file of a package) cannot be checked statically.
      if (arg && ts.isStringLiteralLike(arg)) add(arg.text, false, node);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      add(node.argument.literal.text, true, node);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

const builtins = new Set(builtinModules);

/** `nodemailer/lib/x` -> `nodemailer`, `@scope/pkg/x` -> `@scope/pkg`, `fs` and `node:fs/promises` -> `node:fs`. */
export function packageName(spec: string): string {
  if (spec.startsWith('node:')) return `node:${spec.slice(5).split('/')[0]}`;
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
  return builtins.has(name) ? `node:${name}` : name;
}

/** The .ts files of src/ that the rule applies to (test files excluded), relative to src/. */
export function sourceFiles(srcRoot: string, dir = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(srcRoot, dir)).sort()) {
    const rel = dir ? `${dir}/${name}` : name;
    if (statSync(join(srcRoot, rel)).isDirectory()) out.push(...sourceFiles(srcRoot, rel));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

export interface Violation {
  file: string;
  line: number;
  message: string;
}

/**
 * Checks edges against the rules. Returns the violations, and the
 * exceptions no edge used (stale entries the document should drop).
 */
export function checkImports(rulesDoc: ImportRules, edges: ImportEdge[], files: string[]): { violations: Violation[]; unusedExceptions: Exception[] } {
  const violations: Violation[] = [];
  const used = new Set<Exception>();
  for (const file of files) {
    if (!ruleFor(rulesDoc.rules, file)) {
      violations.push({ file, line: 1, message: `no row of the import table in docs/architecture.md covers src/${file}; add one` });
    }
  }
  for (const e of edges) {
    const rule = ruleFor(rulesDoc.rules, e.file);
    if (!rule) continue;
    const problem = e.internal ? internalProblem(rule, e) : packageProblem(rule, e);
    if (!problem) continue;
    const exception = rulesDoc.exceptions.find((x) => covers(x.from, e.file) && x.to.some((t) => (e.internal ? covers(t, e.target) : t === e.target)));
    if (exception) {
      used.add(exception);
      continue;
    }
    violations.push({ file: e.file, line: e.line, message: problem });
  }
  return { violations, unusedExceptions: rulesDoc.exceptions.filter((x) => !used.has(x)) };
}

function internalProblem(rule: Rule, e: ImportEdge): string | null {
  if (covers(rule.scope, e.target)) return null;
  const kind = e.typeOnly ? 'types from' : 'values from';
  if (e.target.startsWith('..')) return `imports ${e.target}, outside src/`;
  if (rule.except.some((t) => covers(t, e.target))) return `imports ${kind} ${e.target}: ${rule.scope} may not import ${rule.except.join(', ')}`;
  if (rule.values === null || rule.values.some((t) => covers(t, e.target))) return null;
  if (rule.types.some((t) => covers(t, e.target))) {
    return e.typeOnly ? null : `imports values from ${e.target}: ${rule.scope} may import only types from it (use \`import type\`)`;
  }
  return `imports ${kind} ${e.target}: ${rule.scope} may not depend on it`;
}

function packageProblem(rule: Rule, e: ImportEdge): string | null {
  if (rule.packages === null) return null;
  if (rule.packages.includes(e.target)) return null;
  if (e.target.startsWith('node:') && rule.packages.includes('node:*')) return null;
  return `imports ${e.target}: not among the packages ${rule.scope} may use`;
}

/** Reads the document and src/ and runs the check. */
export function checkRepository(root: string): ReturnType<typeof checkImports> & { rules: ImportRules; files: string[]; edges: ImportEdge[] } {
  const rules = parseImportRules(readFileSync(join(root, 'docs/architecture.md'), 'utf8'));
  const srcRoot = join(root, 'src');
  const files = sourceFiles(srcRoot);
  const edges = files.flatMap((f) => importsOf(srcRoot, f, readFileSync(join(srcRoot, f), 'utf8')));
  return { ...checkImports(rules, edges, files), rules, files, edges };
}
