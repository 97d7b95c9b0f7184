import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, parseConfig } from '@bulwark/server';
import fc from 'fast-check';
import { stringify } from 'yaml';

const valid = readFileSync(join(import.meta.dirname, 'fixtures', 'petstore.yaml'), 'utf8');
const env = { PAYMENT_TOKEN: 't', OPENAI_KEY: 'k' };

/** The loader's one contract with bad input: a config, or a ConfigError with located issues. */
function loadsOrRejects(text: string, environment: Record<string, string> = env): void {
  try {
    parseConfig(text, { env: environment, baseDir: '/srv' });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `threw ${String(error)} for:\n${text}`);
    assert.ok(error.issues.length > 0);
    for (const issue of error.issues) {
      assert.equal(typeof issue.path, 'string');
      assert.ok(issue.message.length > 0);
    }
  }
}

const KEYS = [
  'dependencies',
  'groups',
  'kind',
  'timeout',
  'retry',
  'breaker',
  'window',
  'providers',
  'http',
  'auth',
  'pool',
];

describe('the loader never fails with anything but a validation error', () => {
  test('on any JSON value written as YAML', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => loadsOrRejects(stringify(value))),
      { numRuns: 200 },
    );
  });

  test('on any value (undefined, symbols-free) under the known keys', () => {
    const shaped = fc.dictionary(
      fc.constantFrom(...KEYS),
      fc.anything({ withNullPrototype: true, maxDepth: 3 }),
    );
    fc.assert(
      fc.property(
        fc.record({ dependencies: fc.dictionary(fc.string(), shaped), groups: fc.anything() }),
        (value) => {
          let text: string;
          try {
            text = stringify(value);
          } catch {
            return; // not every JS value can be written as YAML
          }
          loadsOrRejects(text);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('on random text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => loadsOrRejects(text)),
      { numRuns: 300 },
    );
  });

  test('on random mutations of a valid file, and random overrides', () => {
    const mutation = fc.record({
      at: fc.nat(valid.length),
      remove: fc.nat(8),
      insert: fc.constantFrom(
        '',
        ':',
        ' ',
        '\n',
        '{',
        '[',
        '- ',
        '"',
        "'",
        '&a ',
        '*a',
        '${',
        '.inf',
        '-1',
        'x',
        '\t',
      ),
    });
    const override = fc.dictionary(
      fc.constantFrom(
        'BULWARK_DEPENDENCIES__CACHE__TIMEOUT',
        'BULWARK_GROUPS__AI',
        'BULWARK_X__Y',
        'BULWARK_DEPENDENCIES__NEW__RETRY',
      ),
      fc.oneof(
        fc.string({ maxLength: 10 }),
        fc.constantFrom('{ a: 1 }', '[1, 2]', '3', 'true', '{ maxAttempts: ['),
      ),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), override, (mutations, vars) => {
        let text = valid;
        for (const m of mutations) text = text.slice(0, m.at) + m.insert + text.slice(m.at + m.remove);
        loadsOrRejects(text, { ...env, ...vars });
      }),
      { numRuns: 300 },
    );
  });
});
