import ts from 'typescript';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
const out=[];
function walk(d){for(const n of readdirSync(d)){const p=join(d,n);if(statSync(p).isDirectory())walk(p);else if(p.endsWith('.ts')&&!p.endsWith('.test.ts'))check(p);}}
function check(f){const src=ts.createSourceFile(f,readFileSync(f,'utf8'),ts.ScriptTarget.Latest,true);
function visit(n){if((ts.isFunctionDeclaration(n)||ts.isArrowFunction(n)||ts.isFunctionExpression(n)||ts.isMethodDeclaration(n))&&n.body){const a=src.getLineAndCharacterOfPosition(n.getStart()).line;const b=src.getLineAndCharacterOfPosition(n.end).line;if(b-a>80){out.push([b-a,f+':'+(a+1)+' '+(n.name?n.name.getText():'<anon>')]);}}ts.forEachChild(n,visit);}visit(src);}
walk('src');out.sort((x,y)=>y[0]-x[0]);for(const [l,s] of out)console.log(l,s);
