// Runs the petstore demo (`npm run example:policies`) in its fast mode and checks that it tells the story it
// promises: the breaker opens during the outage and closes after it, fallbacks answer, the
// bulkhead sheds the flash sale, the statistics print, and nothing is left scheduled.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runTypeScript } from './support.ts';

test('the petstore demo opens and closes the breaker, sheds load and exits cleanly', async () => {
  const { stdout } = await runTypeScript('examples/petstore-demo.ts', ['--fast'], {
    timeout: 30_000,
    env: { ...process.env, NO_COLOR: '1' },
  });
  const opened = stdout.indexOf('breaker opened');
  const closed = stdout.indexOf('breaker closed');
  assert.ok(opened >= 0, `the breaker never opened:\n${stdout}`);
  assert.ok(closed > opened, `the breaker did not close after opening:\n${stdout}`);
  assert.match(stdout, /payments\.fallback\s+fallback used ×\d+ \(.*circuit open/);
  assert.match(stdout, /inventory\.bulkhead\s+bulkhead rejected ×\d+ \(.*queue-full/);
  assert.match(stdout, /timed out after \d+ ms/);
  for (const title of ['Retry', 'Circuit breakers', 'Bulkheads', 'Fallbacks', 'Timeouts']) {
    assert.match(stdout, new RegExp(`^${title}$`, 'm'), `no '${title}' table`);
  }
  assert.match(stdout, /^payment-gateway\s+closed\s/m, 'the breaker should end closed');
  assert.match(stdout, /^pending timers: 0$/m);
});
