// Checks the deployment assets in deploy/ against the server they deploy: the Kubernetes probes
// against its real routes and defaults, the PromQL of the dashboard and the alerts against the
// metrics it exports, and the alerts against their promtool unit tests.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import client from 'prom-client';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { normalizeServerSettings, parseApiKeys } from '../src/http/settings.ts';
import { parseConfig } from '../src/index.ts';
import { as, testServer } from './server-support.ts';

const root = join(import.meta.dirname, '..', '..', '..');
const deploy = join(root, 'deploy');
const run = promisify(execFile);
const scratch = mkdtempSync(join(tmpdir(), 'bulwark-deploy-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, written literally.
const DS_UID = '${DS_PROMETHEUS}';

const read = (path: string): string => readFileSync(join(deploy, path), 'utf8');
const yamlFile = (path: string): any => parse(read(path));

// ---------------------------------------------------------------------------------------------
// What /metrics exports: the server's metric catalogue, and prom-client's default metrics as
// prom-client itself names them.

interface MetricDef {
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly labels: readonly string[];
  /** The only values of an enumerated label, so that `kind="failure"` for `failed` is caught. */
  readonly values?: Readonly<Record<string, readonly string[]>>;
}

const BULWARK_METRICS: Record<string, MetricDef> = {
  bulwark_circuitbreaker_state: {
    type: 'gauge',
    labels: ['name', 'state'],
    values: { state: ['closed', 'open', 'half_open', 'isolated'] },
  },
  bulwark_circuitbreaker_calls_total: {
    type: 'counter',
    labels: ['name', 'kind'],
    values: { kind: ['successful', 'failed', 'not_permitted', 'ignored'] },
  },
  bulwark_retry_calls_total: {
    type: 'counter',
    labels: ['name', 'kind'],
    values: {
      kind: [
        'successful_without_retry',
        'successful_with_retry',
        'failed_with_retry',
        'failed_without_retry',
      ],
    },
  },
  bulwark_bulkhead_available_concurrent_calls: { type: 'gauge', labels: ['name'] },
  bulwark_ratelimiter_available_permits: { type: 'gauge', labels: ['name'] },
  bulwark_dependency_call_duration_seconds: {
    type: 'histogram',
    labels: ['name', 'outcome'],
    values: { outcome: ['success', 'failure', 'timeout', 'rejected', 'cancelled'] },
  },
  bulwark_workflow_runs_total: {
    type: 'counter',
    labels: ['workflow', 'status'],
    values: { status: ['completed', 'failed', 'cancelled', 'compensated'] },
  },
  bulwark_workflow_active_runs: { type: 'gauge', labels: ['workflow'] },
  bulwark_workflow_step_duration_seconds: { type: 'histogram', labels: ['workflow', 'step', 'status'] },
  bulwark_workflow_oldest_active_run_age_seconds: { type: 'gauge', labels: ['workflow'] },
  http_server_request_duration_seconds: { type: 'histogram', labels: ['method', 'route', 'status_code'] },
};

async function defaultMetrics(): Promise<Record<string, MetricDef>> {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const metrics: Record<string, MetricDef> = {};
  for (const m of await registry.getMetricsAsJSON()) {
    const labels = new Set(m.values.flatMap((v) => Object.keys(v.labels)));
    metrics[m.name] = { type: String(m.type) as MetricDef['type'], labels: [...labels] };
  }
  registry.clear();
  return metrics;
}

const METRICS: Record<string, MetricDef> = { ...(await defaultMetrics()), ...BULWARK_METRICS };
/** Added by Prometheus or the Prometheus Operator to every scraped series. */
const TARGET_LABELS = ['job', 'instance', 'namespace', 'pod', 'service', 'container', 'endpoint'];

// ---------------------------------------------------------------------------------------------
// A small PromQL reader: enough to find the selectors, matchers and grouping labels of the
// queries in deploy/, and to tell a metric name from a function or keyword.

const FUNCTIONS = new Set(
  (
    'sum min max avg count group stddev stdvar topk bottomk quantile count_values ' +
    'rate irate increase delta idelta deriv predict_linear resets changes histogram_quantile ' +
    'min_over_time max_over_time avg_over_time sum_over_time count_over_time last_over_time ' +
    'quantile_over_time absent absent_over_time abs ceil floor round clamp clamp_min clamp_max ' +
    'label_replace label_join sort sort_desc scalar vector time timestamp sqrt exp ln log2 log10'
  ).split(' '),
);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2']);

interface Token {
  kind: 'ident' | 'braces' | 'skip' | 'punct';
  text: string;
}

/** The index just past the quoted string that starts at `start`. */
function endOfString(s: string, start: number): number {
  const quote = s[start];
  let i = start + 1;
  while (i < s.length && s[i] !== quote) i += s[i] === '\\' && quote !== '`' ? 2 : 1;
  return i + 1;
}

/** The index just past the bracket that closes the one at `start` (strings inside skipped). */
function endOfBlock(s: string, start: number, close: string): number {
  let i = start + 1;
  while (i < s.length && s[i] !== close) i = /["'`]/.test(s[i]!) ? endOfString(s, i) : i + 1;
  return i + 1;
}

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const rest = expr.slice(i);
    const c = expr[i]!;
    let m: RegExpExecArray | null;
    if (/\s/.test(c)) i++;
    else if (c === '#') i = expr.includes('\n', i) ? expr.indexOf('\n', i) : expr.length;
    else if (c === '{') {
      const end = endOfBlock(expr, i, '}');
      tokens.push({ kind: 'braces', text: expr.slice(i + 1, end - 1) });
      i = end;
    } else if (c === '[')
      i = endOfBlock(expr, i, ']'); // a range or subquery: no names in it
    else if (/["'`]/.test(c)) {
      const end = endOfString(expr, i);
      tokens.push({ kind: 'skip', text: expr.slice(i, end) });
      i = end;
    } else if ((m = /^[A-Za-z_:][\w:]*/.exec(rest)) !== null) {
      tokens.push({ kind: 'ident', text: m[0] });
      i += m[0].length;
    } else if ((m = /^(?:\d[\w.+-]*|\.\d+|\$\{?\w+\}?)/.exec(rest)) !== null) {
      tokens.push({ kind: 'skip', text: m[0] }); // numbers, durations, Grafana variables
      i += m[0].length;
    } else {
      tokens.push({ kind: 'punct', text: c });
      i++;
    }
  }
  return tokens;
}

interface Matcher {
  label: string;
  op: string;
  value: string;
}

const MATCHER = /^\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(?:,|$)/;

function parseMatchers(text: string, issues: string[]): Matcher[] {
  const matchers: Matcher[] = [];
  let rest = text;
  while (rest.trim() !== '') {
    const m = MATCHER.exec(rest);
    if (m === null) {
      issues.push(`cannot read the matchers {${text}}`);
      break;
    }
    matchers.push({ label: m[1]!, op: m[2]!, value: m[3]!.slice(1, -1) });
    rest = rest.slice(m[0].length);
  }
  return matchers;
}

/** The definition behind a series name: a histogram's `_bucket`, `_sum` and `_count` included. */
function resolve(name: string): { name: string; def: MetricDef; bucket: boolean } | undefined {
  const def = METRICS[name];
  if (def !== undefined) return { name, def, bucket: false };
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const base = m === null ? undefined : METRICS[m[1]!];
  return base?.type === 'histogram' ? { name: m![1]!, def: base, bucket: m![2] === 'bucket' } : undefined;
}

/**
 * The metrics `expr` reads (by their catalogue names), and every name in it that is neither
 * exported nor PromQL: unknown metrics, labels, label values and functions.
 */
function readPromQL(expr: string): { metrics: string[]; issues: string[] } {
  const issues: string[] = [];
  const metrics: string[] = [];
  const tokens = tokenize(expr);
  const labelsInScope = new Set(TARGET_LABELS);
  const grouping: string[] = [];
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k]!;
    const next = tokens[k + 1];
    if (t.kind === 'braces') issues.push(`a selector without a metric name: {${t.text}}`);
    if (t.kind !== 'ident') continue;
    if (GROUPING.has(t.text)) {
      if (next?.text !== '(') continue; // group_left without labels
      for (k += 2; k < tokens.length && tokens[k]!.text !== ')'; k++) {
        if (tokens[k]!.kind === 'ident') grouping.push(tokens[k]!.text);
      }
      continue;
    }
    if (KEYWORDS.has(t.text)) continue;
    // `sum(...)`, `sum by (x) (...)`: a function, never a metric.
    if (next?.text === '(' || (FUNCTIONS.has(t.text) && GROUPING.has(next?.text ?? ''))) {
      if (!FUNCTIONS.has(t.text)) issues.push(`unknown function ${t.text}()`);
      continue;
    }
    const matchers = next?.kind === 'braces' ? parseMatchers(next.text, issues) : [];
    if (next?.kind === 'braces') k++;
    const found = resolve(t.text);
    if (found === undefined) {
      issues.push(`unknown metric ${t.text}`);
      continue;
    }
    metrics.push(found.name);
    const labels = new Set([...found.def.labels, ...TARGET_LABELS, ...(found.bucket ? ['le'] : [])]);
    for (const label of labels) labelsInScope.add(label);
    for (const { label, op, value } of matchers) {
      if (!labels.has(label)) {
        issues.push(`${t.text} has no label ${label}`);
        continue;
      }
      const allowed = found.def.values?.[label];
      if (allowed === undefined || value.includes('$')) continue;
      // A regex is read as an alternation of literal values; one with other syntax is not checked.
      const wanted = op.endsWith('~') ? value.split('|') : [value];
      if (op.endsWith('~') && !/^[\w|]+$/.test(value)) continue;
      for (const v of wanted) {
        if (!allowed.includes(v)) issues.push(`${t.text}{${label}} has no value ${JSON.stringify(v)}`);
      }
    }
  }
  for (const label of grouping) {
    if (!labelsInScope.has(label)) issues.push(`grouping by ${label}, which no metric of the query has`);
  }
  return { metrics, issues };
}

const checkPromQL = (expr: string): string[] => readPromQL(expr).issues;

/** Grafana's variables, replaced by what they stand for, so that promtool can read the query. */
function expand(expr: string): string {
  return expr.replace(/\$__(?:rate_interval|interval|range)/g, '5m').replace(/\$\{?\w+\}?/g, '.*');
}

// ---------------------------------------------------------------------------------------------
// promtool (Debian's `prometheus` package): its absence skips the rule tests, except under CI.

/** Whether `command` runs (found on PATH and answering `args`). */
function installed(command: string, ...args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
const NO_PROMTOOL =
  'promtool not found: install it (Debian: apt-get install prometheus) to run the rule tests';
const promtoolSkip = installed('promtool', '--version') ? undefined : NO_PROMTOOL;
if (promtoolSkip !== undefined && process.env.CI === 'true') {
  test('promtool is installed (required under CI)', () => assert.fail(NO_PROMTOOL));
}

/** Runs promtool; resolves with its output, and fails the test with that output on a non-zero exit. */
async function promtool(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: root, timeout: 20_000 });
    return stdout + stderr;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return assert.fail(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The assets under test.

const dashboard = JSON.parse(read('grafana/bulwark-dashboard.json'));
const panels: any[] = dashboard.panels.flatMap((p: any) => [p, ...(p.panels ?? [])]);
const queries: { where: string; expr: string }[] = panels.flatMap((p: any) =>
  (p.targets ?? []).map((t: any) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr })),
);
const alerts = yamlFile('prometheus/alerts.yaml');
const rules: any[] = alerts.groups.flatMap((g: any) => g.rules);

// ---------------------------------------------------------------------------------------------

describe('the PromQL reader', () => {
  test('finds misspelled metrics, labels, label values and functions', () => {
    assert.deepEqual(checkPromQL('rate(bulwark_retry_call_total[5m])'), [
      'unknown metric bulwark_retry_call_total',
    ]);
    assert.deepEqual(checkPromQL('bulwark_circuitbreaker_state{state="opened"}'), [
      'bulwark_circuitbreaker_state{state} has no value "opened"',
    ]);
    assert.deepEqual(checkPromQL('bulwark_workflow_runs_total{status=~"completed|failure"}'), [
      'bulwark_workflow_runs_total{status} has no value "failure"',
    ]);
    assert.deepEqual(checkPromQL('bulwark_retry_calls_total{dependency="x"}'), [
      'bulwark_retry_calls_total has no label dependency',
    ]);
    assert.deepEqual(checkPromQL('sum by (dependency) (bulwark_retry_calls_total)'), [
      'grouping by dependency, which no metric of the query has',
    ]);
    assert.deepEqual(checkPromQL('rated(bulwark_retry_calls_total[5m])'), ['unknown function rated()']);
    assert.deepEqual(checkPromQL('bulwark_workflow_active_runs_bucket'), [
      'unknown metric bulwark_workflow_active_runs_bucket',
    ]);
  });

  test('accepts histogram series, target labels, Grafana variables and prom-client defaults', () => {
    const exprs = [
      'histogram_quantile(0.99, sum by (route, le) (rate(http_server_request_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))',
      'sum by (namespace, job, name) (rate(bulwark_dependency_call_duration_seconds_count{outcome!~"rejected|cancelled"}[5m])) > 0.1',
      'rate(process_cpu_seconds_total[5m]) and nodejs_eventloop_lag_p99_seconds > bool 0.2',
    ];
    for (const expr of exprs) assert.deepEqual(checkPromQL(expr), [], expr);
  });
});

test('the server serves, to an API key, every metric of the catalogue and every one deploy/ reads', async () => {
  const server = await testServer({
    dependencies: { payments: { kind: 'http', critical: true }, cache: { kind: 'cache' } },
  });
  try {
    assert.equal((await server.app.inject({ url: '/metrics' })).statusCode, 401);
    const scrape = await server.app.inject({ url: '/metrics', headers: as('viewer') });
    assert.equal(scrape.statusCode, 200);
    const types = new Map([...scrape.body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    // The process metrics vary with the Node version: those that deploy/ reads must be there.
    const used = [...queries.map((q) => q.expr), ...rules.map((r) => r.expr)].flatMap(
      (e) => readPromQL(e).metrics,
    );
    for (const name of new Set([...Object.keys(BULWARK_METRICS), ...used])) {
      assert.equal(types.get(name), METRICS[name]!.type, name);
    }
    // The series present (breakers, retries, zero series of each workflow status) have only the
    // labels, and the label values, the catalogue knows.
    assert.match(scrape.body, /^bulwark_circuitbreaker_state\{.*name="payments".*\} 1$/m);
    assert.match(scrape.body, /^bulwark_workflow_runs_total\{.*status="compensated".*\} 0$/m);
    const issues: string[] = [];
    for (const [, name, labels = ''] of scrape.body.matchAll(/^([A-Za-z_:][\w:]*)(?:\{(.*)\})? \S+$/gm)) {
      const found = resolve(name!);
      if (found === undefined || !(found.name in BULWARK_METRICS)) continue;
      for (const [, label, value] of labels.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        if (label === 'le' && found.bucket) continue;
        if (!found.def.labels.includes(label!)) issues.push(`${name} has a label ${label}`);
        const allowed = found.def.values?.[label!];
        if (allowed !== undefined && !allowed.includes(value!)) issues.push(`${name}{${label}="${value}"}`);
      }
    }
    assert.deepEqual(issues, []);
  } finally {
    await server.close();
  }
});

describe('deploy/grafana/bulwark-dashboard.json', () => {
  test('is a schemaVersion 39 dashboard on a DS_PROMETHEUS data source variable', () => {
    assert.equal(dashboard.schemaVersion, 39);
    const ds = dashboard.templating.list.find((v: any) => v.name === 'DS_PROMETHEUS');
    assert.equal(ds?.type, 'datasource');
    assert.equal(ds?.query, 'prometheus');
    for (const p of panels.filter((p) => p.type !== 'row')) {
      assert.equal(p.datasource?.uid, DS_UID, `panel "${p.title}"`);
      for (const t of p.targets) assert.equal(t.datasource?.uid, DS_UID, `panel "${p.title}"`);
    }
  });

  test('has unique panel ids and a layout without overlaps, within 24 columns', () => {
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    const cells = new Set<string>();
    for (const { title, gridPos: g } of panels) {
      assert.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24, `panel "${title}" is outside the grid`);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `panel "${title}" overlaps another at ${x},${y}`);
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  test('has a panel for each thing an operator watches', () => {
    const uses = (pattern: RegExp, type = 'timeseries') =>
      panels.some((p) => p.type === type && p.targets.some((t: any) => pattern.test(t.expr)));
    const wanted: [string, RegExp, string?][] = [
      ['breaker state timeline', /bulwark_circuitbreaker_state/, 'state-timeline'],
      ['breaker calls by kind', /by \(name, kind\) \(rate\(bulwark_circuitbreaker_calls_total/],
      ['dependency p95', /histogram_quantile\(0\.95, .*bulwark_dependency_call_duration_seconds_bucket/],
      ['dependency p99', /histogram_quantile\(0\.99, .*bulwark_dependency_call_duration_seconds_bucket/],
      ['retry rate', /rate\(bulwark_retry_calls_total/],
      ['bulkhead available', /bulwark_bulkhead_available_concurrent_calls/],
      ['limiter permits', /bulwark_ratelimiter_available_permits/],
      ['runs by status', /by \(workflow, status\) \(rate\(bulwark_workflow_runs_total/],
      ['active runs', /bulwark_workflow_active_runs/],
      ['step duration p95', /histogram_quantile\(0\.95, .*bulwark_workflow_step_duration_seconds_bucket/],
      ['HTTP request rate by route', /by \(route.*rate\(http_server_request_duration_seconds_count/],
      ['HTTP p99 by route', /histogram_quantile\(0\.99, sum by \(route, le\).*http_server_request_duration/],
    ];
    for (const [what, pattern, type] of wanted) assert.ok(uses(pattern, type), `no panel for ${what}`);
  });

  test('names only metrics, labels and values the server exports', () => {
    assert.ok(queries.length > 10);
    const issues = queries.flatMap(({ where, expr }) => checkPromQL(expr).map((i) => `${where}: ${i}`));
    for (const v of dashboard.templating.list.filter((v: any) => v.type === 'query')) {
      const m = /^label_values\((.+),\s*(\w+)\)$/.exec(v.definition);
      assert.ok(m !== null, `variable ${v.name}: expected label_values(selector, label)`);
      issues.push(...checkPromQL(m[1]!).map((i) => `variable ${v.name}: ${i}`));
      const metric = resolve(m[1]!.replace(/\{.*$/, ''));
      if (metric !== undefined && !metric.def.labels.includes(m[2]!) && !TARGET_LABELS.includes(m[2]!)) {
        issues.push(`variable ${v.name}: ${m[1]} has no label ${m[2]}`);
      }
    }
    assert.deepEqual(issues, []);
  });

  test('takes quantiles over _bucket series grouped by le', () => {
    for (const { where, expr } of queries) {
      if (!expr.includes('histogram_quantile')) continue;
      assert.match(expr, /_bucket\{/, where);
      assert.match(expr, /by \([^)]*\ble\b[^)]*\)/, where);
    }
  });

  test('is valid PromQL throughout (promtool)', { skip: promtoolSkip }, async () => {
    const rules = queries.map(({ expr }, i) => ({ record: `dashboard:query_${i}`, expr: expand(expr) }));
    const file = join(scratch, 'dashboard-queries.yaml');
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
    await promtool('check', 'rules', file);
  });

  test('shows the worst breaker state across replicas, isolated above open above half-open (promtool)', {
    skip: promtoolSkip,
  }, async () => {
    const panel = panels.find((p) => p.type === 'state-timeline');
    const mappings = panel.fieldConfig.defaults.mappings[0].options;
    const code = (text: string) => Number(Object.keys(mappings).find((k) => mappings[k].text === text));
    // Each replica's gauge: 1 for its current state, 0 for the others.
    const replicas: [string, string, string][] = [
      ['payments', 'a', 'open'],
      ['payments', 'b', 'closed'],
      ['inventory', 'a', 'half_open'],
      ['inventory', 'b', 'closed'],
      ['search', 'a', 'closed'],
      ['ledger', 'a', 'isolated'],
      ['ledger', 'b', 'open'],
    ];
    const input_series = replicas.flatMap(([name, instance, current]) =>
      BULWARK_METRICS.bulwark_circuitbreaker_state!.values!.state!.map((state) => ({
        series: `bulwark_circuitbreaker_state{job="bulwark",instance="${instance}",name="${name}",state="${state}"}`,
        values: state === current ? '1x5' : '0x5',
      })),
    );
    const expected = { payments: 'open', inventory: 'half-open', search: 'closed', ledger: 'isolated' };
    const exp_samples = Object.entries(expected).map(([name, text]) => ({
      labels: `{name="${name}"}`,
      value: code(text),
    }));
    const tests = [
      {
        interval: '1m',
        input_series,
        promql_expr_test: [{ expr: expand(panel.targets[0].expr), eval_time: '2m', exp_samples }],
      },
    ];
    const file = join(scratch, 'breaker-timeline.test.yaml');
    writeFileSync(file, stringify({ rule_files: [], evaluation_interval: '1m', tests }));
    await promtool('test', 'rules', file);
  });
});

describe('deploy/prometheus/alerts.yaml', () => {
  test('is the group bulwark with the four alerts, each with a severity, a summary and a description', () => {
    assert.deepEqual(
      alerts.groups.map((g: any) => g.name),
      ['bulwark'],
    );
    assert.deepEqual(
      rules.map((r) => r.alert),
      [
        'BulwarkCircuitBreakerOpen',
        'BulwarkDependencyHighFailureRate',
        'BulwarkWorkflowFailureRate',
        'BulwarkWorkflowRunsStuck',
      ],
    );
    for (const r of rules) {
      assert.match(r.labels?.severity ?? '', /^(?:warning|critical)$/, r.alert);
      assert.ok(r.annotations?.summary && r.annotations?.description, r.alert);
      assert.match(r.for ?? '', /^\d+m$/, r.alert);
    }
  });

  test('names only metrics, labels and values the server exports', () => {
    assert.deepEqual(
      rules.flatMap((r) => checkPromQL(r.expr).map((i) => `${r.alert}: ${i}`)),
      [],
    );
  });

  test('passes promtool check rules', { skip: promtoolSkip }, async () => {
    assert.match(await promtool('check', 'rules', 'deploy/prometheus/alerts.yaml'), /SUCCESS: 4 rules found/);
  });

  test('passes its promtool unit tests (alerts.test.yaml)', { skip: promtoolSkip }, async () => {
    assert.match(await promtool('test', 'rules', 'deploy/prometheus/alerts.test.yaml'), /SUCCESS/);
  });

  test('has, for each alert, a unit test where it fires and one where it does not', () => {
    const cases: any[] = yamlFile('prometheus/alerts.test.yaml').tests.flatMap((t: any) => t.alert_rule_test);
    for (const { alert } of rules) {
      const mine = cases.filter((c) => c.alertname === alert);
      assert.ok(
        mine.some((c) => c.exp_alerts?.length > 0),
        `${alert}: no case where it fires`,
      );
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert}: no case where it stays quiet`,
      );
    }
  });

  test('is what deploy/kubernetes/prometheusrule.yaml carries', () => {
    const rule = yamlFile('kubernetes/prometheusrule.yaml');
    assert.equal(rule.kind, 'PrometheusRule');
    assert.deepEqual(
      rule.spec,
      alerts,
      'prometheusrule.yaml differs: copy the groups of alerts.yaml into it',
    );
  });
});

describe('deploy/kubernetes', () => {
  const dir = join(deploy, 'kubernetes');
  const manifests = new Map<string, any>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'));
    for (const doc of docs) assert.deepEqual(doc.errors, [], `${file} is not valid YAML`);
    assert.equal(docs.length, 1, `${file}: one document per file`);
    manifests.set(file, docs[0]!.toJS());
  }
  const get = (file: string): any => {
    assert.ok(manifests.has(file), `deploy/kubernetes/${file} is missing`);
    return manifests.get(file);
  };
  const kustomization = get('kustomization.yaml');
  const deployment = get('deployment.yaml');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const secret = get('secret.example.yaml');
  const service = get('service.yaml');
  // The configuration the pods run with, and the server settings it makes (the grace period).
  const configText = read('kubernetes/bulwark.yaml');
  const referenced = [...configText.replace(/^\s*#.*$/gm, '').matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]!);
  const config = parseConfig(configText, {
    env: Object.fromEntries(referenced.map((name) => [name, 'a-value'])),
  });
  const settings = normalizeServerSettings(config.server ?? {});
  /** The container port a probe or Service names, as a number. */
  const portOf = (port: string | number): number =>
    typeof port === 'number' ? port : container.ports.find((p: any) => p.name === port)?.containerPort;
  const arg = (flag: string): string | undefined => container.args[container.args.indexOf(flag) + 1];
  const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
    Object.entries(selector).every(([k, v]) => labels[k] === v);

  test('kustomization.yaml lists every manifest but the example Secret and the config file', () => {
    const listed = [...kustomization.resources].sort();
    const manifestsHere = [...manifests.keys()]
      .filter((f) => !['kustomization.yaml', 'secret.example.yaml', 'bulwark.yaml'].includes(f))
      .sort();
    assert.deepEqual(listed, manifestsHere);
    assert.deepEqual(kustomization.configMapGenerator[0].files, ['bulwark.yaml']);
  });

  test('the Deployment listens where the server listens, and its probes ask the server routes', () => {
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(portOf('http'), settings.port);
    assert.equal(Number(arg('--port')), settings.port);
    assert.equal(arg('--host'), '0.0.0.0');
    assert.equal(container.args[0], 'start');
    for (const probe of ['startupProbe', 'livenessProbe']) {
      assert.equal(container[probe].httpGet.path, '/health/live', probe);
      assert.equal(portOf(container[probe].httpGet.port), settings.port, probe);
    }
    assert.equal(container.readinessProbe.httpGet.path, '/health/ready');
    assert.equal(portOf(container.readinessProbe.httpGet.port), settings.port);
  });

  test('the probe paths answer on the real server: liveness stays up and readiness fails while draining', async () => {
    const server = await testServer({ dependencies: {} });
    try {
      const probe = (path: string) => server.app.inject({ method: 'GET', url: path });
      const paths = ['startupProbe', 'livenessProbe', 'readinessProbe'].map((p) => container[p].httpGet.path);
      for (const path of paths) assert.equal((await probe(path)).statusCode, 200, path);
      server.drain();
      assert.equal((await probe(container.readinessProbe.httpGet.path)).statusCode, 503);
      assert.equal((await probe(container.livenessProbe.httpGet.path)).statusCode, 200);
    } finally {
      await server.close();
    }
  });

  test('pods get longer to stop than the preStop sleep and the server grace period together', () => {
    const preStop = container.lifecycle.preStop.exec.command;
    assert.deepEqual(preStop, ['sleep', '5']);
    const budgetMs = 5_000 + settings.shutdownGraceMs;
    assert.ok(pod.terminationGracePeriodSeconds * 1000 > budgetMs, `at most ${budgetMs} ms`);
    assert.equal(pod.terminationGracePeriodSeconds, 35);
  });

  test('the container runs as a non-root user on a read-only root filesystem, with a writable /tmp', () => {
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.ok(pod.securityContext.runAsUser > 0);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    const volumes = new Map(pod.volumes.map((v: any) => [v.name, v]));
    for (const mount of container.volumeMounts) assert.ok(volumes.has(mount.name), mount.name);
    const tmp = container.volumeMounts.find((m: any) => m.mountPath === '/tmp');
    assert.ok((volumes.get(tmp?.name) as any)?.emptyDir, '/tmp is an emptyDir');
    const data = container.volumeMounts.find((m: any) => m.mountPath === arg('--data-dir'));
    assert.ok(data, 'the data directory is a volume');
    assert.ok(container.resources.requests.cpu && container.resources.requests.memory);
    assert.ok(container.resources.limits.memory);
  });

  test('the configuration is mounted from the generated ConfigMap and is a valid bulwark.yaml', () => {
    const mount = container.volumeMounts.find((m: any) => arg('--config')!.startsWith(`${m.mountPath}/`));
    assert.ok(mount, '--config is inside a mounted volume');
    const volume = pod.volumes.find((v: any) => v.name === mount.name);
    assert.equal(volume.configMap.name, kustomization.configMapGenerator[0].name);
    assert.equal(arg('--config'), `${mount.mountPath}/bulwark.yaml`);
    assert.ok(Object.keys(config.dependencies).length > 0);
    assert.ok(referenced.length > 0);
    // Each ${NAME} the file uses must reach the container.
    for (const name of referenced) {
      assert.ok(
        container.env.some((e: any) => e.name === name),
        `${name} is not in the container's env`,
      );
    }
  });

  test('every Secret key the manifests read is in secret.example.yaml, and its API keys parse', () => {
    const keys = Object.keys(secret.stringData);
    const refs = container.env.map((e: any) => e.valueFrom?.secretKeyRef).filter(Boolean);
    assert.deepEqual(
      container.env.map((e: any) => e.name).filter((n: string) => n.startsWith('BULWARK_')),
      ['BULWARK_DATABASE_URL', 'BULWARK_API_KEYS'],
    );
    const monitor = get('servicemonitor.yaml').spec.endpoints[0];
    refs.push(monitor.authorization.credentials);
    for (const ref of refs) {
      assert.equal(ref.name, secret.metadata.name);
      assert.ok(keys.includes(ref.key), `${ref.key} is not in secret.example.yaml`);
    }
    const apiKeys = parseApiKeys(secret.stringData.BULWARK_API_KEYS);
    const token = secret.stringData[monitor.authorization.credentials.key];
    assert.ok(
      apiKeys.some((k) => k.secret === token),
      'the metrics token is not one of the API keys',
    );
    assert.match(secret.stringData.BULWARK_DATABASE_URL, /^postgres(?:ql)?:\/\//);
  });

  test('the Service selects the pods and the ServiceMonitor scrapes /metrics through it', () => {
    const podLabels = deployment.spec.template.metadata.labels;
    assert.ok(matches(deployment.spec.selector.matchLabels, podLabels));
    assert.ok(matches(service.spec.selector, podLabels));
    const port = service.spec.ports[0];
    assert.equal(portOf(port.targetPort), settings.port);
    const monitor = get('servicemonitor.yaml');
    assert.ok(matches(monitor.spec.selector.matchLabels, service.metadata.labels));
    assert.equal(monitor.spec.endpoints[0].port, port.name);
    assert.equal(monitor.spec.endpoints[0].path, '/metrics');
    assert.equal(monitor.spec.endpoints[0].authorization.type, 'Bearer');
    const budget = get('poddisruptionbudget.yaml');
    assert.ok(matches(budget.spec.selector.matchLabels, podLabels));
    assert.ok(budget.spec.minAvailable < deployment.spec.replicas);
  });

  // kubectl is optional: the structure is checked above without it.
  const kubectl = installed('kubectl', 'version', '--client');
  test('kubectl kustomize renders it, renaming the ConfigMap in the Deployment', {
    skip: kubectl ? undefined : 'kubectl not found (optional; it renders the kustomization)',
  }, async () => {
    const { stdout } = await run('kubectl', ['kustomize', dir], { timeout: 20_000 });
    const rendered = parseAllDocuments(stdout).map((d) => d.toJS());
    const map = rendered.find((r: any) => r.kind === 'ConfigMap');
    assert.match(map.metadata.name, /^bulwark-config-\w+$/);
    const deployed = rendered.find((r: any) => r.kind === 'Deployment');
    const volume = deployed.spec.template.spec.volumes.find((v: any) => v.configMap);
    assert.equal(volume.configMap.name, map.metadata.name);
  });
});

describe('deploy/Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => /^[A-Z]+\s/.test(l));
  const all = (name: string) =>
    instructions.filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1));
  const last = (name: string) => all(name).at(-1) ?? '';

  test('builds on node:20-bookworm-slim in stages and runs as node, on the server port', () => {
    assert.match(dockerfile, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    assert.deepEqual(
      all('FROM').map((f) => f.split(' AS ')[1]),
      ['toolchain', 'build', 'prod-deps', 'runtime'],
    );
    assert.match(dockerfile, /apt-get install -y --no-install-recommends python3 make g\+\+/);
    assert.match(dockerfile, /RUN npm ci\n/);
    assert.match(dockerfile, /RUN npm run build && npm run build:dashboard\n/);
    assert.match(dockerfile, /RUN npm ci --omit=dev/);
    assert.equal(last('USER'), 'node');
    assert.equal(last('EXPOSE'), String(normalizeServerSettings().port));
    assert.match(last('HEALTHCHECK'), /http:\/\/127\.0\.0\.1:8080\/health\/live/);
    assert.equal(last('VOLUME'), '/data');
  });

  test('starts the bulwark CLI, listening on all interfaces with its data in /data', () => {
    const entrypoint = JSON.parse(last('ENTRYPOINT'));
    assert.deepEqual(entrypoint, ['node', 'packages/server/bin/bulwark.js']);
    assert.ok(existsSync(join(root, entrypoint[1]!)));
    assert.deepEqual(JSON.parse(last('CMD')), ['start', '--host', '0.0.0.0', '--data-dir', '/data']);
  });

  test('copies every workspace package, and only paths that exist', () => {
    const packages = readdirSync(join(root, 'packages')).filter((p) =>
      existsSync(join(root, 'packages', p, 'package.json')),
    );
    for (const p of packages) {
      assert.ok(all('COPY').includes(`packages/${p}/package.json packages/${p}/`), `${p}'s manifest`);
      assert.ok(
        all('COPY').includes(`--from=build /app/packages/${p}/dist packages/${p}/dist/`),
        `${p}'s dist`,
      );
    }
    for (const copy of all('COPY').filter((c) => !c.startsWith('--from'))) {
      const sources = copy.split(/\s+/).slice(0, -1);
      for (const source of sources) assert.ok(existsSync(join(root, source)), `COPY ${source}`);
    }
    // The stores read their SQL migrations at run time, next to their compiled code.
    assert.ok(all('COPY').some((c) => c.endsWith('packages/workflow/migrations/')));
  });

  test('copies the files under src/ that are not TypeScript (tsc compiles .ts files only)', () => {
    // A file under src/ that is not TypeScript (an HTML page, a template) is not in dist/: the
    // runtime stage has to copy it, or the image fails where the repository works.
    const assets = readdirSync(join(root, 'packages'), { recursive: true, encoding: 'utf8' })
      .map((f) => join('packages', f))
      .filter((f) => /^packages\/[^/]+\/src\//.test(f) && /\.[a-z]+$/i.test(f) && !f.endsWith('.ts'))
      .filter((f) => !f.includes('node_modules'));
    for (const asset of assets) {
      assert.ok(
        all('COPY').some(
          (c) => c.startsWith('--from=build') && asset.startsWith(c.split(/\s+/)[1]!.slice('/app/'.length)),
        ),
        `${asset} is not TypeScript, so not in dist/, and deploy/Dockerfile does not copy it`,
      );
    }
  });

  test('the build context leaves out node_modules, builds, .bulwark and .git', () => {
    const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['**/node_modules', '**/dist', '**/.bulwark', '.git']) {
      assert.ok(ignored.includes(entry), entry);
    }
  });
});
