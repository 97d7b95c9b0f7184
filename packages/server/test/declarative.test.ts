// Declarative workflows from bulwark.yaml: what the loader refuses (each fault at its path and
// line), and how compiled workflows run on the real engine: needs and parallelism, http through a
// dependency, fallbacks, compensation in reverse order, delays and events.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DependencyRegistry } from '@bulwark/core';
import { ConfigError } from '../src/config/errors.ts';
import { parseConfig } from '../src/config/load.ts';
import { compileWorkflow, compileWorkflows, errorScope } from '../src/declarative/compile.ts';
import { declared, site } from './declarative-support.ts';

/** Every issue of a file that must not load, as `line:column path: message`. */
function issuesOf(yaml: string): string[] {
  try {
    parseConfig(yaml);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`);
  }
  assert.fail('the configuration loaded');
}

describe('the workflows section, validated at load', () => {
  test('names what is wrong at its path and line, with the nearest name meant', () => {
    const yaml = `dependencies:
  web: { kind: http }
  db: { kind: database }
workflows:
  w:
    steps:
      a: { uses: htp, url: x }
      b: { uses: http, dependency: wbe, url: "{{ input.url | slugg }}" }
      c: { uses: http, dependency: db, url: "{{ steps.fetch.x }}" }
      d: { uses: transform, value: "{{ run.ids }} {{ error.x }} {{ inptu.x }}" }
      e: { uses: transform, value: "{{ input.x ", needs: [e, zebra] }
      f: { uses: delay, for: 3 parsecs }
      g: { uses: wait-event, event: ok }
      h: { uses: wait-event, event: ok }
      i: { uses: transform, value: 1, fallback: { value: "{{ output }}" }, compensate: { uses: file.delete, path: "{{ error.message }}" } }
storage: { dir: ./files, size: 1 }
`;
    assert.deepEqual(issuesOf(yaml), [
      "7:18 workflows.w.steps.a.uses: expected one of 'http', 'extract', 'file.write', 'file.delete', 'transform', 'delay', 'wait-event', got \"htp\"; did you mean 'http'?",
      "8:36 workflows.w.steps.b.dependency: no dependency 'wbe' is defined; did you mean 'web'?",
      "8:46 workflows.w.steps.b.url: template: unknown filter 'slugg'; did you mean 'slug'?",
      "9:36 workflows.w.steps.c.dependency: 'db' is kind 'database'; an http step needs a dependency of kind 'http'",
      "9:45 workflows.w.steps.c.url: {{ steps.fetch.x }}: no step 'fetch' in this workflow",
      "10:36 workflows.w.steps.d.value: {{ run.ids }}: run has id, workflow, version; did you mean 'run.id'?",
      "10:36 workflows.w.steps.d.value: {{ error.x }}: 'error' is not known here (error is known in a fallback only); a template reads input, steps, run",
      "10:36 workflows.w.steps.d.value: {{ inptu.x }}: 'inptu' is not known here; a template reads input, steps, run; did you mean 'input'?",
      '11:36 workflows.w.steps.e.value: template: "{{" is not closed by "}}"',
      '11:59 workflows.w.steps.e.needs[0]: a step cannot need itself',
      "11:62 workflows.w.steps.e.needs[1]: no step 'zebra' in this workflow",
      '12:30 workflows.w.steps.f.for: expected a duration like 200ms, 1.5s or 2m, got "3 parsecs"',
      "14:37 workflows.w.steps.h.event: step 'g' already waits for event 'ok'; a run waits for each event once",
      "15:58 workflows.w.steps.i.fallback.value: {{ output }}: 'output' is not known here (output is known in a compensate only); a template reads input, steps, run, error",
      "15:115 workflows.w.steps.i.compensate.path: {{ error.message }}: 'error' is not known here (error is known in a fallback only); a template reads input, steps, run, output",
      "16:26 storage.size: unknown key (expected one of 'dir')",
    ]);
  });

  test('a cycle through needs and template reads is named step by step', () => {
    const yaml = `workflows:
  w:
    steps:
      a: { uses: transform, value: "{{ steps.c.x }}" }
      b: { uses: transform, value: 1, needs: a }
      c: { uses: transform, value: 2, needs: [b] }
`;
    assert.deepEqual(issuesOf(yaml), [
      '4:7 workflows.w.steps.a: steps wait for each other in a cycle: a → c → b → a (through needs: and the steps templates read)',
    ]);
  });

  test('a step name must work in a template path, and a workflow name in a URL', () => {
    assert.deepEqual(
      issuesOf('workflows:\n  -bad:\n    steps:\n      x.y: { uses: transform, value: 1 }\n'),
      [
        "2:3 workflows.-bad: a name holds letters, digits, '_', '-' and '.', and does not start with '-' or '.'",
        "4:7 workflows.-bad.steps.x.y: a step name holds letters, digits, '_' and '-', and starts with a letter or '_'",
      ],
    );
  });

  test('a valid section loads: durations in ms, needs as a list, storage.dir absolute against the file', () => {
    const config = parseConfig(
      `storage: { dir: out }
workflows:
  w:
    version: 2
    steps:
      pause: { uses: delay, for: 1.5s }
      wait: { uses: wait-event, event: go, timeout: 1h, needs: pause }
      t: { uses: transform, value: "{{ steps.wait }}", timeout: 2s, retry: { maxAttempts: 2, base: 10ms } }
`,
      { baseDir: '/srv/app' },
    );
    assert.equal(config.storage?.dir, '/srv/app/out');
    assert.deepEqual(config.workflows?.w, {
      version: '2',
      steps: {
        pause: { uses: 'delay', forMs: 1_500, needs: [] },
        wait: { uses: 'wait-event', event: 'go', timeoutMs: 3_600_000, needs: ['pause'] },
        t: {
          uses: 'transform',
          value: '{{ steps.wait }}',
          needs: [],
          timeoutMs: 2_000,
          retry: { maxAttempts: 2, baseMs: 10 },
        },
      },
    });
    // Not enumerable: the registry takes the configuration as it is.
    assert.deepEqual(Object.keys(config), ['dependencies', 'groups']);
  });

  test('example: any JSON value, NAME references resolved, reaches the compiled definition; one JSON cannot carry is named', () => {
    const config = parseConfig(
      `workflows:
  w:
    example:
      url: "\${SITE}/page"
      tags: [a, 2, true, null]
    steps:
      t: { uses: transform, value: "{{ input.url }}" }
`,
      { env: { SITE: 'http://127.0.0.1:8080' } },
    );
    const example = { url: 'http://127.0.0.1:8080/page', tags: ['a', 2, true, null] };
    assert.deepEqual(config.workflows?.w?.example, example);
    const registry = new DependencyRegistry(config);
    const [definition] = compileWorkflows(config.workflows ?? {}, { registry, storageDir: '/tmp/unused' });
    assert.deepEqual(definition?.example, example);
    assert.deepEqual(
      issuesOf(`workflows:
  w:
    example: { n: .nan, deep: [1, .inf] }
    steps:
      t: { uses: transform, value: 1 }
`),
      [
        '3:19 workflows.w.example.n: must be a JSON value, got NaN',
        '3:35 workflows.w.example.deep[1]: must be a JSON value, got Infinity',
      ],
    );
  });
});

describe('compiled workflows on the engine', () => {
  test('steps with nothing between them run in parallel; a step that needs them waits for both', async (t) => {
    // Answers a request to /slow/* only once both have arrived: sequential steps would never get there.
    const waiting: ((together: boolean) => void)[] = [];
    const log: string[] = [];
    const web = await site((req, res) => {
      log.push(`in ${req.url}`);
      const answer = (together: boolean) => {
        log.push(`out ${req.url}`);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ together }));
      };
      if (!req.url!.startsWith('/slow/')) return answer(false);
      waiting.push(answer);
      if (waiting.length === 2) for (const release of waiting.splice(0)) release(true);
      else {
        setTimeout(() => {
          for (const release of waiting.splice(0)) release(false);
        }, 3_000).unref();
      }
    });
    t.after(() => web.close());
    const wf = await declared(
      `dependencies:
  api: { kind: http, http: { baseUrl: "${web.url}" }, retry: false }
workflows:
  fan:
    steps:
      left: { uses: http, dependency: api, url: /slow/left, retry: false }
      right: { uses: http, dependency: api, url: /slow/right, retry: false }
      join: { uses: http, dependency: api, url: /join, needs: [left, right], retry: false }
    output: "{{ steps.left.body.together }} {{ steps.right.body.together }}"
`,
    );
    t.after(() => wf.close());
    const run = await wf.run('fan');
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    assert.equal(run.output, 'true true');
    assert.equal(log.at(-2), 'in /join');
    assert.ok(log.indexOf('in /join') > log.indexOf('out /slow/left'));
    assert.ok(log.indexOf('in /join') > log.indexOf('out /slow/right'));
  });

  test('http: method, headers, JSON body and response; expect accepts a 404; a status outside it fails', async (t) => {
    const web = await site((req, res, body) => {
      if (req.url === '/missing') {
        res.writeHead(404, { 'content-type': 'application/json' });
        return void res.end('{"error":"no such thing"}');
      }
      if (req.url === '/moved') {
        res.writeHead(204);
        return void res.end();
      }
      res.writeHead(201, { 'content-type': 'application/json', 'x-id': '7' });
      res.end(
        JSON.stringify({
          method: req.method,
          type: req.headers['content-type'],
          tag: req.headers['x-tag'],
          got: JSON.parse(body),
        }),
      );
    });
    t.after(() => web.close());
    const wf = await declared(
      `dependencies:
  api: { kind: http, http: { baseUrl: "${web.url}" }, retry: false }
workflows:
  calls:
    steps:
      create:
        uses: http
        dependency: api
        method: PUT
        url: "/things/{{ input.id | urlencode }}"
        headers: { x-tag: "tag-{{ input.id }}" }
        body: { id: "{{ input.id }}", n: "{{ input.n }}" }
      lookup: { uses: http, dependency: api, url: /missing, expect: [200, 404], needs: create }
  strict:
    steps:
      nothing: { uses: http, dependency: api, url: /moved, expect: [200], retry: false }
`,
    );
    t.after(() => wf.close());
    const run = await wf.run('calls', { id: 'a b', n: 5 });
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    const output = run.output as Record<
      string,
      { status: number; headers: Record<string, string>; body: unknown }
    >;
    assert.deepEqual(output.lookup, {
      status: 404,
      headers: output.lookup!.headers,
      body: { error: 'no such thing' },
    });
    assert.deepEqual(web.requests.slice(0, 2), ['PUT /things/a%20b', 'GET /missing']);
    const timeline = await wf.timeline(run.id);
    assert.deepEqual(
      timeline.filter((e) => e.type === 'step:completed').map((e) => e.step),
      ['create', 'lookup'],
    );

    const failed = await wf.run('strict');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error?.code, 'BULWARK_STEP_UNEXPECTED_STATUS');
    assert.match(failed.error?.message ?? '', /answered 204; the step expects 200/);
  });

  test('http: a JSON body, headers and the created output are recorded as data', async (t) => {
    const web = await site((req, res, body) => {
      res.writeHead(201, { 'content-type': 'application/json; charset=utf-8', 'x-id': '7' });
      res.end(
        JSON.stringify({ method: req.method, type: req.headers['content-type'], got: JSON.parse(body) }),
      );
    });
    t.after(() => web.close());
    const wf = await declared(
      `dependencies:
  api: { kind: http, http: { baseUrl: "${web.url}" } }
workflows:
  post:
    steps:
      send: { uses: http, dependency: api, url: /x, body: { n: "{{ input.n }}", list: ["{{ input.n }}", a] } }
`,
    );
    t.after(() => wf.close());
    const run = await wf.run('post', { n: 5 });
    const { send } = run.output as {
      send: { status: number; headers: Record<string, string>; body: unknown };
    };
    assert.equal(send.status, 201);
    assert.equal(send.headers['x-id'], '7');
    assert.deepEqual(send.body, { method: 'POST', type: 'application/json', got: { n: 5, list: [5, 'a'] } });
  });

  test('http: a body larger than maxBytes fails the step, not retried', async (t) => {
    const web = await site((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('x'.repeat(2_000));
    });
    t.after(() => web.close());
    const wf = await declared(
      `dependencies:
  api: { kind: http, http: { baseUrl: "${web.url}" } }
workflows:
  big:
    steps:
      get: { uses: http, dependency: api, url: /, maxBytes: 1KiB }
`,
    );
    t.after(() => wf.close());
    const run = await wf.run('big');
    assert.equal(run.status, 'failed');
    assert.equal(run.error?.code, 'BULWARK_STEP_TOO_LARGE');
    assert.equal(web.requests.length, 1);
  });

  test('a failure compensates the completed steps in reverse order, each with its output in scope', async (t) => {
    const web = await site((req, res) => {
      res.writeHead(req.url === '/fail' ? 400 : 200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    t.after(() => web.close());
    const wf = await declared(
      `dependencies:
  api: { kind: http, http: { baseUrl: "${web.url}" }, retry: false }
workflows:
  saga:
    steps:
      first: { uses: file.write, path: "out/{{ input.name }}.txt", content: "hello {{ input.name }}" }
      second:
        uses: http
        dependency: api
        url: /reserve
        needs: first
        compensate: { uses: http, dependency: api, method: POST, url: "/release?file={{ steps.first.path | urlencode }}", body: { status: "{{ output.status }}" } }
      kept: { uses: file.write, path: keep.txt, content: { a: 1 }, needs: second, compensate: false }
      boom: { uses: http, dependency: api, url: /fail, needs: kept, retry: false }
`,
    );
    t.after(() => wf.close());
    const run = await wf.run('saga', { name: 'ada' });
    assert.equal(run.status, 'compensated', JSON.stringify(run.error));
    const timeline = await wf.timeline(run.id);
    assert.deepEqual(
      timeline.filter((e) => e.type.startsWith('compensation:')).map((e) => `${e.type} ${e.step}`),
      [
        'compensation:started second',
        'compensation:completed second',
        'compensation:started first',
        'compensation:completed first',
      ],
    );
    assert.deepEqual(web.requests, ['GET /reserve', 'GET /fail', 'POST /release?file=out%2Fada.txt']);
    // file.write's own compensation removed the file it created; `compensate: false` kept the other.
    assert.ok(!existsSync(join(wf.files, 'out', 'ada.txt')));
    assert.equal(readFileSync(join(wf.files, 'keep.txt'), 'utf8'), '{\n  "a": 1\n}\n');
  });

  test('file.write records path, bytes, sha256 and created; a file that existed before is not removed by the compensation', async (t) => {
    const web = await site((_req, res) => {
      res.writeHead(400);
      res.end();
    });
    t.after(() => web.close());
    const wf = await declared(
      `dependencies:
  api: { kind: http, http: { baseUrl: "${web.url}" }, retry: false }
workflows:
  seed:
    steps:
      w: { uses: file.write, path: doc.md, content: "{{ input.text }}" }
  overwrite:
    steps:
      w: { uses: file.write, path: doc.md, content: "{{ input.text }}" }
      fail: { uses: http, dependency: api, url: /fail, needs: w, retry: false }
`,
    );
    t.after(() => wf.close());
    const seeded = await wf.run('seed', { text: 'vé' });
    assert.deepEqual(seeded.output, {
      w: {
        path: 'doc.md',
        bytes: 3,
        sha256: createHash('sha256').update('vé').digest('hex'),
        created: true,
      },
    });
    const undone = await wf.run('overwrite', { text: 'v2' });
    assert.equal(undone.status, 'compensated');
    // Not created by the run, so not removed (its earlier content is not restored either).
    assert.equal(readFileSync(join(wf.files, 'doc.md'), 'utf8'), 'v2');
  });

  test('a delay sleeps durably and a wait-event returns the payload sent to the run', async (t) => {
    const wf = await declared(`workflows:
  approve:
    steps:
      pause: { uses: delay, for: 30ms }
      decision: { uses: wait-event, event: approved, timeout: 1m, needs: pause }
      result: { uses: transform, value: { by: "{{ steps.decision.by }}", run: "{{ run.workflow }}" } }
    output: "{{ steps.result }}"
`);
    t.after(() => wf.close());
    const { id } = await wf.engine.start('approve', {});
    assert.equal(await wf.engine.sendEvent(id, 'approved', { by: 'ada' }), true);
    assert.deepEqual(await wf.engine.result(id), { by: 'ada', run: 'approve' });
    const steps = (await wf.timeline(id)).filter(
      (e) => e.type === 'run:sleeping' || e.type === 'run:waiting',
    );
    assert.ok(steps.some((e) => e.type === 'run:sleeping' && e.step === 'sleep:pause'));
  });

  test('a wait-event that times out takes its fallback and the run completes degraded', async (t) => {
    const wf = await declared(`workflows:
  approve:
    steps:
      decision: { uses: wait-event, event: approved, timeout: 20ms, fallback: { value: { by: nobody, why: "{{ error.code }}" } } }
`);
    t.after(() => wf.close());
    const run = await wf.run('approve');
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    assert.equal(run.degraded, true);
    assert.deepEqual(run.output, { decision: { by: 'nobody', why: 'BULWARK_WORKFLOW_WAIT_TIMEOUT' } });
  });

  test('whenCircuitOpen: fail makes an http step fall back at once behind an open circuit; the default parks it', async (t) => {
    const wf = await declared(`dependencies:
  voice: { kind: http, http: { baseUrl: "http://127.0.0.1:9" }, retry: false }
workflows:
  now:
    steps:
      speak: { uses: http, dependency: voice, url: /speak, whenCircuitOpen: fail, fallback: { value: clip } }
  later:
    steps:
      speak: { uses: http, dependency: voice, url: /speak, fallback: { value: clip } }
`);
    t.after(() => wf.close());
    wf.registry.breaker('voice')!.isolate();
    const run = await wf.run('now');
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    assert.equal(run.degraded, true);
    assert.deepEqual(run.output, { speak: 'clip' });

    const { id } = await wf.engine.start('later', {});
    let parked: unknown;
    for await (const event of wf.engine.timeline(id)) {
      if (event.type === 'step:parked') {
        parked = event.data;
        break;
      }
    }
    // Parked behind the dependency whose breaker refused, though the step calls it through `registry.fetch`.
    assert.equal((parked as { dependency?: unknown })?.dependency, 'voice');
    assert.equal((parked as { isolated?: unknown })?.isolated, true);
  });

  test('whenCircuitOpen takes park or fail only; the loader names the path and line', () => {
    assert.throws(
      () =>
        parseConfig(
          `dependencies:
  voice: { kind: http }
workflows:
  w:
    steps:
      speak: { uses: http, dependency: voice, url: /speak, whenCircuitOpen: skip }
`,
          { env: {} },
        ),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(
          error.message,
          /:6:\d+ +workflows\.w\.steps\.speak\.whenCircuitOpen: expected one of 'park', 'fail'/,
        );
        return true;
      },
    );
  });

  test('compileWorkflow refuses in code what the loader would: a cycle, a missing registry', () => {
    const step = (value: string, needs: string[] = []) => ({ uses: 'transform' as const, value, needs });
    assert.throws(
      () =>
        compileWorkflow(
          'w',
          { steps: { a: step('{{ steps.b }}'), b: step('1', ['a']) } },
          { storageDir: '/tmp' },
        ),
      /workflow 'w': steps wait for each other: a → b → a/,
    );
    assert.throws(
      () =>
        compileWorkflow(
          'w',
          { steps: { get: { uses: 'http', dependency: 'x', url: '/', needs: [] } } },
          { storageDir: '/tmp' },
        ),
      /step 'get': an http step needs the registry/,
    );
    assert.throws(
      () =>
        compileWorkflow(
          'w',
          {
            steps: {
              put: {
                ...step('1'),
                compensate: { uses: 'http', dependency: 'x', url: '/undo', method: 'DELETE' },
              },
            },
          },
          { storageDir: '/tmp' },
        ),
      /step 'put': its compensate calls a dependency, which needs the registry/,
    );
    assert.doesNotThrow(() =>
      compileWorkflow(
        'w',
        { steps: { get: { uses: 'http', dependency: 'x', url: '/', needs: [] } } },
        { storageDir: '/tmp', registry: new DependencyRegistry() },
      ),
    );
  });

  test('a fallback sees the innermost code and every message of the failure', () => {
    const inner = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const outer = Object.assign(new TypeError('fetch failed', { cause: inner }));
    const retried = Object.assign(new Error('Retries exhausted after 2 attempts', { cause: outer }), {
      code: 'BULWARK_RETRIES_EXHAUSTED',
    });
    assert.deepEqual(errorScope(retried), {
      message: 'Retries exhausted after 2 attempts: fetch failed: connect ECONNREFUSED 127.0.0.1:1',
      code: 'ECONNREFUSED',
      status: null,
    });
  });
});
