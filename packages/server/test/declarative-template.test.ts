// `{{ }}` templates: the grammar, the filters, types kept by a lone expression, and, with
// fast-check, that no template executes anything or reads beyond the own data of its scope.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  compileValue,
  evaluate,
  parseTemplate,
  render,
  slug,
  TemplateError,
  TemplateSyntaxError,
} from '../src/declarative/template.ts';

const scope = {
  input: { url: 'https://example.test/a b', n: 3, flag: false, list: [1, 2, { x: 'y' }], none: null },
  steps: { fetch: { status: 200, body: { title: 'Hello, Wörld!' } }, 'my-step': { ok: true } },
  run: { id: 'r1', workflow: 'w', version: '1' },
};

const text = (template: string) => render(parseTemplate(template), scope);

describe('templates', () => {
  test('a string that is exactly one expression keeps the type of its value', () => {
    assert.equal(text('{{ input.n }}'), 3);
    assert.equal(text('{{input.flag}}'), false);
    assert.deepEqual(text('{{ input.list }}'), [1, 2, { x: 'y' }]);
    assert.equal(text('{{ input.none }}'), null);
    assert.equal(text('{{ input.list[2].x }}'), 'y');
    assert.equal(text('{{ input["url"] }}'), 'https://example.test/a b');
    assert.equal(text('{{ steps.my-step.ok }}'), true);
  });

  test('text around expressions makes a string: lists and maps as JSON, null as nothing', () => {
    assert.equal(
      text('n={{ input.n }} f={{ input.flag }} l={{ input.list }} z={{ input.none }}.'),
      'n=3 f=false l=[1,2,{"x":"y"}] z=.',
    );
    assert.equal(text('no templates {here}'), 'no templates {here}');
  });

  test('filters apply left to right', () => {
    assert.equal(text('{{ steps.fetch.body.title | slug }}'), 'hello-world');
    assert.equal(text('{{ steps.fetch.body.title | upper }}'), 'HELLO, WÖRLD!');
    assert.equal(text('{{ input.url | urlencode }}'), 'https%3A%2F%2Fexample.test%2Fa%20b');
    assert.equal(text('{{ input.missing | default("x") | upper }}'), 'X');
    assert.equal(text('{{ input.none | default(7) }}'), 7);
    assert.equal(text('{{ input.list | json }}'), '[1,2,{"x":"y"}]');
    assert.equal(text('{{ "<a href=\'x\'>&" | html }}'), '&lt;a href=&#39;x&#39;&gt;&amp;');
    assert.equal(text('{{ "  padded " | trim }}'), 'padded');
    assert.equal(text('{{ "{{" }} literal'), '{{ literal');
    assert.equal(slug('***'), 'untitled');
    assert.equal(slug('a'.repeat(100)).length, 80);
  });

  test('a value that is not set is an error naming it, unless a default is given', () => {
    assert.throws(
      () => text('{{ input.nope }}'),
      (e: unknown) => {
        assert.ok(e instanceof TemplateError);
        assert.equal(e.code, 'BULWARK_TEMPLATE');
        assert.match(e.message, /^\{\{ input\.nope \}\}: input\.nope is not set/);
        return true;
      },
    );
    assert.throws(() => text('x {{ input.list[9] }}'), /input\.list\[9\] is not set/);
  });

  test('syntax errors say what was expected and where', () => {
    const cases: [string, RegExp][] = [
      ['{{ input.x ', /"\{\{" is not closed by "\}\}"/],
      ['{{ }}', /expected a name/],
      ['{{ input. }}', /expected a name after "\."/],
      ['{{ input | nope }}', /unknown filter 'nope'/],
      ['{{ input | default }}', /filter 'default' takes 1 argument, got 0/],
      ['{{ input | upper(1) }}', /filter 'upper' takes no arguments, got 1/],
      ['{{ input[-1] }}', /an index must be a whole number/],
      ['{{ input + 1 }}', /expected "\}\}" at "\+ 1 \}\}"/],
      ['{{ "open }}', /a string literal is not closed/],
    ];
    for (const [template, message] of cases) {
      assert.throws(
        () => parseTemplate(template),
        (e: unknown) => {
          assert.ok(e instanceof TemplateSyntaxError, template);
          assert.match(e.message, message, template);
          return true;
        },
      );
    }
  });

  test('maps and lists are walked; keys are never templates and __proto__ stays a plain key', () => {
    const compiled = compileValue({
      '{{ input.n }}': '{{ input.n }}',
      list: ['{{ run.id }}', 4],
      __proto__x: null,
    });
    assert.deepEqual(evaluate(compiled, scope), { '{{ input.n }}': 3, list: ['r1', 4], __proto__x: null });
    const proto = compileValue(JSON.parse('{"__proto__": "{{ input.n }}"}'));
    const value = evaluate(proto, scope) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.ok(Object.hasOwn(value, '__proto__'));
  });
});

describe('templates, property-based', () => {
  const word = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,8}$/);

  test('any string either parses or fails with TemplateSyntaxError, nothing else', () => {
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom(
            '{',
            '}',
            '|',
            '.',
            '[',
            ']',
            '"',
            "'",
            '(',
            ')',
            ',',
            ' ',
            'a',
            '1',
            'x',
            '\\',
          ),
        }),
        (s) => {
          try {
            parseTemplate(s);
          } catch (error) {
            assert.ok(error instanceof TemplateSyntaxError, String(error));
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });

  test('text without "{{" renders to itself', () => {
    fc.assert(
      fc.property(
        fc.string().filter((s) => !s.includes('{{')),
        (s) => {
          assert.equal(render(parseTemplate(s), scope), s);
        },
      ),
    );
  });

  test('a declared value without templates evaluates to itself', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        fc.pre(!JSON.stringify(v).includes('{{'));
        assert.deepEqual(evaluate(compileValue(v), scope), v);
      }),
    );
  });

  test('a lone expression returns the value it names, unchanged, whatever it is', () => {
    fc.assert(
      fc.property(word, fc.jsonValue(), (key, v) => {
        fc.pre(v !== null);
        assert.deepEqual(render(parseTemplate(`{{ input.${key} }}`), { input: { [key]: v } }), v);
      }),
    );
  });

  test('values substituted into text are never parsed again', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const out = render(parseTemplate('<{{ input.s }}>'), {
          input: { s: `{{ input.secret }}${s}` },
          steps: { secret: 1 },
        });
        assert.equal(out, `<{{ input.secret }}${s}>`);
      }),
    );
  });

  test('a path reads own data properties only: no prototype, no getter, nothing outside the scope', () => {
    const names = fc.constantFrom(
      'constructor',
      '__proto__',
      'prototype',
      'toString',
      'valueOf',
      'hasOwnProperty',
      'length',
      'process',
      'globalThis',
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(names, word), { minLength: 1, maxLength: 4 }), (path) => {
        let called = false;
        const data: Record<string, unknown> = { a: 1, list: [1, 2] };
        Object.defineProperty(data, 'getter', {
          enumerable: true,
          get: () => {
            called = true;
            return 'secret';
          },
        });
        const template = `{{ input.${path.join('.')} }}`;
        let value: unknown;
        try {
          value = render(parseTemplate(template), { input: data });
        } catch (error) {
          assert.ok(error instanceof TemplateError, String(error));
          value = undefined;
        }
        assert.equal(called, false);
        // Whatever was found is own data of the scope: a number of `data`, or nothing.
        if (value !== undefined) assert.ok(path[0] === 'a' && path.length === 1, template);
      }),
      { numRuns: 1_000 },
    );
    assert.throws(
      () =>
        render(parseTemplate('{{ input.getter }}'), {
          input: Object.defineProperty({}, 'getter', { get: () => 1 }),
        }),
      TemplateError,
    );
  });
});
