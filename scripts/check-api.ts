// Checks each package's public exports against its committed `api.txt`, so that API changes
// are deliberate: run `npm run check:api -- --update` after an intended change and commit the diff.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const update = process.argv.includes('--update');
const root = join(import.meta.dirname, '..');
let failed = false;

for (const pkg of readdirSync(join(root, 'packages'))) {
  const entry = join(root, 'packages', pkg, 'src', 'index.ts');
  if (!existsSync(entry)) continue;
  const program = ts.createProgram([entry], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    allowImportingTsExtensions: true,
    noEmit: true,
    strict: true,
    customConditions: ['@bulwark/source'],
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  const moduleSymbol = source && checker.getSymbolAtLocation(source);
  if (!moduleSymbol) throw new Error(`cannot read the exports of ${entry}`);
  const lines = checker
    .getExportsOfModule(moduleSymbol)
    .map((symbol) => {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      return `${kindOf(target.flags)} ${symbol.getName()}`;
    })
    .sort();
  const actual = `${lines.join('\n')}\n`;
  const file = join(root, 'packages', pkg, 'api.txt');
  if (update) {
    writeFileSync(file, actual);
    console.log(`updated packages/${pkg}/api.txt (${lines.length} exports)`);
    continue;
  }
  const expected = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (expected !== actual) {
    failed = true;
    const want = new Set(expected.split('\n').filter(Boolean));
    const have = new Set(lines);
    for (const l of have) if (!want.has(l)) console.error(`packages/${pkg}: new export     + ${l}`);
    for (const l of want) if (!have.has(l)) console.error(`packages/${pkg}: removed export - ${l}`);
  } else {
    console.log(`packages/${pkg}: public API matches api.txt (${lines.length} exports)`);
  }
}

if (failed) {
  console.error(
    'The public API changed. If that is intended: npm run check:api -- --update, and commit api.txt.',
  );
  process.exit(1);
}

function kindOf(flags: number): string {
  if (flags & ts.SymbolFlags.Class) return 'class';
  if (flags & ts.SymbolFlags.Function) return 'function';
  if (flags & ts.SymbolFlags.Interface) return 'interface';
  if (flags & ts.SymbolFlags.TypeAlias) return 'type';
  if (flags & ts.SymbolFlags.Variable) return 'const';
  if (flags & ts.SymbolFlags.Enum) return 'enum';
  return 'other';
}
