/**
 * Imports point down (docs/architecture.md): the import graph of middleware/src and components/ has no cycle,
 * file by file nor between the concepts (components/, each folder of middleware/src, each file directly in
 * it); type-only imports count too (they are part of the picture a reader follows), and the middleware never imports the Pulumi package built
 * on top of it. Static text only (TypeScript's parser, no type checking), so it runs in about a second.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ROOTS = ['middleware/src', 'components'];

function sources(dir: string): string[] {
  return readdirSync(path.join(REPO, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return sources(rel);
    return rel.endsWith('.ts') && !rel.endsWith('.d.ts') ? [rel] : [];
  });
}

interface Import {
  target: string;
  /** `import type`, or every name imported is a type: erased when compiled. */
  typeOnly: boolean;
}

/** File -> the repository files it imports (relative specifiers; `.js` resolves to the `.ts` source). */
function importGraph(): Map<string, Import[]> {
  const graph = new Map<string, Import[]>();
  for (const file of ROOTS.flatMap(sources)) {
    const source = ts.createSourceFile(file, readFileSync(path.join(REPO, file), 'utf8'), ts.ScriptTarget.ES2022, false);
    const deps: Import[] = [];
    for (const statement of source.statements) {
      if (!(ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) || !statement.moduleSpecifier) continue;
      const fileName = (statement.moduleSpecifier as ts.StringLiteral).text;
      if (!fileName.startsWith('.')) continue;
      const target = path.relative(REPO, path.resolve(path.join(REPO, path.dirname(file)), fileName)).replace(/\.js$/, '.ts');
      assert.ok(existsSync(path.join(REPO, target)), `${file} imports ${fileName}, which is not a file of the repository`);
      deps.push({ target, typeOnly: isTypeOnly(statement) });
    }
    graph.set(file, deps);
  }
  return graph;
}

function isTypeOnly(statement: ts.ImportDeclaration | ts.ExportDeclaration): boolean {
  if (ts.isExportDeclaration(statement)) return statement.isTypeOnly;
  const clause = statement.importClause;
  if (!clause) return false; // a side-effect import runs
  if (clause.isTypeOnly) return true;
  const named = clause.namedBindings;
  return !clause.name && !!named && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
}

/** The first cycle found (a path that ends where it starts), or undefined. */
function findCycle(graph: Map<string, Set<string> | string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') return [...stack.slice(stack.indexOf(next)), next];
      if (!state.has(next)) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of [...graph.keys()].sort()) {
    if (state.has(node)) continue;
    const found = visit(node);
    if (found) return found;
  }
  return undefined;
}

/** components/, a folder of middleware/src (`middleware/src/mvcc`), or a file directly in it (`middleware/src/log.ts`). */
function conceptOf(file: string): string {
  if (file.startsWith('components/')) return 'components';
  return file.split('/').slice(0, 3).join('/');
}

const graph = importGraph();

it('no file imports itself back through others', () => {
  assert.ok(graph.size > 100, `read ${graph.size} files; expected the whole of ${ROOTS.join(' and ')}`);
  // type-only imports count too: erased when compiled, but a reader follows them all the same
  const cycle = findCycle(new Map([...graph].map(([file, deps]) => [file, deps.map((d) => d.target)])));
  assert.equal(cycle, undefined, `import cycle: ${cycle?.join(' -> ')}`);
});

it('the middleware never imports the Pulumi package', () => {
  const up = [...graph].flatMap(([file, deps]) => (file.startsWith('middleware/') ? deps.filter((d) => d.target.startsWith('components/')).map((d) => `${file} -> ${d.target}`) : []));
  assert.deepEqual(up, []);
});

it('the concepts import one another in one direction only', () => {
  const concepts = new Map<string, Set<string>>();
  const because = new Map<string, string>();
  for (const [file, deps] of graph) {
    for (const { target: dep } of deps) {
      const [from, to] = [conceptOf(file), conceptOf(dep)];
      if (from === to) continue;
      if (!concepts.has(from)) concepts.set(from, new Set());
      concepts.get(from)!.add(to);
      because.set(`${from} -> ${to}`, `${file} imports ${dep}`);
    }
  }
  assert.ok(concepts.get('components')?.has('middleware/src/topology'), 'the scan sees components import the topology model');
  const cycle = findCycle(concepts);
  const edges = cycle?.slice(1).map((to, i) => because.get(`${cycle[i]} -> ${to}`));
  assert.equal(cycle, undefined, `concepts import each other: ${cycle?.join(' -> ')}\n  ${edges?.join('\n  ')}`);
});
