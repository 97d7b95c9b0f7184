// Regenerates the reference section of docs/configuration.md from the schema (`npm run docs:config`).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withReference } from '../src/config/reference.ts';

const page = join(import.meta.dirname, '..', '..', '..', 'docs', 'configuration.md');
const before = readFileSync(page, 'utf8');
const after = withReference(before);
if (after !== before) writeFileSync(page, after);
console.log(after === before ? 'docs/configuration.md is up to date' : 'updated docs/configuration.md');
