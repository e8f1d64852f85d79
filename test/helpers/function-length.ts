/**
 * Finds the functions of a TypeScript source whose span (from the first token
 * of the function to its closing brace) is longer than a limit. Every kind of
 * function counts: declarations, function expressions, arrow functions,
 * methods, accessors and constructors; a nested function is measured on its
 * own, and its lines count in the function around it too.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

export interface LongFunction {
  /** 1-based line of the function's first token. */
  line: number;
  name: string;
  lines: number;
}

export function longFunctions(fileName: string, text: string, limit: number): LongFunction[] {
  // A file of no more lines than the limit holds no longer function: not worth parsing.
  let lines = 1;
  for (let i = text.indexOf('\n'); i !== -1 && lines <= limit; i = text.indexOf('\n', i + 1)) lines++;
  if (lines <= limit) return [];
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: LongFunction[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = end - start + 1;
      if (lines > limit) out.push({ line: start + 1, name: nameOf(node), lines });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** A readable name: the function's own, or what it is assigned to or passed to. */
function nameOf(node: ts.SignatureDeclaration): string {
  if (ts.isConstructorDeclaration(node)) return `${ownerOf(node)}constructor`;
  if (node.name) return `${ts.isClassElement(node) ? ownerOf(node) : ''}${node.name.getText()}`;
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) {
    return parent.name.getText();
  }
  if (ts.isCallExpression(parent)) {
    const label = parent.arguments[0] && ts.isStringLiteralLike(parent.arguments[0]) ? ` '${parent.arguments[0].text}'` : '';
    return `${parent.expression.getText()}${label} callback`;
  }
  return '(anonymous)';
}

function ownerOf(node: ts.Node): string {
  const cls = node.parent;
  return (ts.isClassDeclaration(cls) || ts.isClassExpression(cls)) && cls.name ? `${cls.name.text}.` : '';
}

/** Every .ts file under dir, as paths relative to dir's parent-relative base. */
export function typeScriptFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...typeScriptFiles(path));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}
