// Unit tests of failure classification (the transient/permanent table of DESIGN.md §1) and of
// reading retry-after hints.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  classify,
  InvalidOptionsError,
  IsolatedCircuitError,
  isTransient,
  parseRetryAfter,
  RateLimitedError,
  RetriesExhaustedError,
  retryAfterOf,
  TimeoutError,
} from '@bulwark/core';
import { withCode, withStatus } from './support.ts';

describe('classify: network errors', () => {
  for (const code of [
    'ECONNRESET',
    'ECONNREFUSED',
    'ECONNABORTED',
    'ETIMEDOUT',
    'ESOCKETTIMEDOUT',
    'EPIPE',
    'EAI_AGAIN',
    'EHOSTUNREACH',
    'ENETUNREACH',
    'ENETDOWN',
    'UND_ERR_SOCKET',
    'UND_ERR_CONNECT_TIMEOUT',
    'UND_ERR_HEADERS_TIMEOUT',
    'UND_ERR_BODY_TIMEOUT',
    'UND_ERR_CLOSED',
  ]) {
    test(`an error with code ${code} is transient`, () => {
      assert.equal(classify(withCode(code)), 'transient');
    });
  }

  test("undici's TypeError('fetch failed') with a cause coded ECONNRESET is transient", () => {
    const error = new TypeError('fetch failed', { cause: withCode('ECONNRESET') });
    assert.equal(classify(error), 'transient');
  });

  test("undici's TypeError('fetch failed') with a socket-error cause is transient", () => {
    const cause = Object.assign(new Error('other side closed'), {
      name: 'SocketError',
      code: 'UND_ERR_SOCKET',
    });
    assert.equal(classify(new TypeError('fetch failed', { cause })), 'transient');
  });

  test('a TypeError without a network cause is a programming error: permanent', () => {
    assert.equal(classify(new TypeError('fetch failed')), 'permanent');
    assert.equal(classify(new TypeError('x is not a function')), 'permanent');
    assert.equal(
      classify(new TypeError('fetch failed', { cause: withCode('ERR_INVALID_URL') })),
      'permanent',
    );
  });

  for (const E of [RangeError, ReferenceError, SyntaxError]) {
    test(`a ${E.name} is permanent`, () => {
      assert.equal(classify(new E('bug')), 'permanent');
    });
  }
});

describe('classify: HTTP statuses', () => {
  for (const status of [408, 425, 429, 500, 502, 503, 504]) {
    test(`status ${status} is transient`, () => {
      assert.equal(classify(withStatus(status)), 'transient');
    });
  }

  for (const status of [400, 401, 403, 404, 409, 422]) {
    test(`status ${status} is permanent`, () => {
      assert.equal(classify(withStatus(status)), 'permanent');
    });
  }

  test('other 4xx and 5xx statuses are permanent', () => {
    for (const status of [405, 410, 413, 501, 505]) assert.equal(classify(withStatus(status)), 'permanent');
  });

  test('the status is read from status, statusCode or response.status', () => {
    assert.equal(classify(Object.assign(new Error(), { statusCode: 503 })), 'transient');
    assert.equal(classify(Object.assign(new Error(), { statusCode: 404 })), 'permanent');
    assert.equal(classify(Object.assign(new Error(), { response: { status: 429 } })), 'transient');
    assert.equal(classify(Object.assign(new Error(), { response: { status: 401 } })), 'permanent');
  });

  test('a status wins over a name: a ValidationError with status 503 is transient', () => {
    assert.equal(classify(Object.assign(new Error(), { name: 'ValidationError', status: 503 })), 'transient');
  });

  test('a permanent status wins over a transient network code', () => {
    assert.equal(classify(Object.assign(new Error(), { status: 400, code: 'ECONNRESET' })), 'permanent');
  });
});

describe('classify: explicit marks, aborts, validation and Bulwark errors', () => {
  test('an explicit transient property wins over everything else', () => {
    assert.equal(classify(Object.assign(new TypeError('x'), { transient: true })), 'transient');
    assert.equal(classify(Object.assign(withStatus(503), { transient: false })), 'permanent');
    assert.equal(classify(Object.assign(new TimeoutError(10), { transient: false })), 'permanent');
  });

  test('aborts are permanent: a DOMException AbortError and any error named AbortError', () => {
    assert.equal(classify(new DOMException('aborted', 'AbortError')), 'permanent');
    assert.equal(classify(Object.assign(new Error('aborted'), { name: 'AbortError' })), 'permanent');
    const controller = new AbortController();
    controller.abort();
    assert.equal(classify(controller.signal.reason), 'permanent');
  });

  test('validation errors are permanent', () => {
    assert.equal(classify(Object.assign(new Error('bad'), { name: 'ValidationError' })), 'permanent');
    assert.equal(classify(Object.assign(new Error('bad'), { name: 'ZodError' })), 'permanent');
    assert.equal(classify(new InvalidOptionsError('retry.maxAttempts', 'must be at least 1')), 'permanent');
  });

  test("Bulwark's timeout, open-circuit, bulkhead and rate-limit rejections are transient", () => {
    assert.equal(classify(new TimeoutError(100)), 'transient');
    assert.equal(classify(new BrokenCircuitError('db', 1_000, 'open')), 'transient');
    assert.equal(classify(new BrokenCircuitError('db', 1_000, 'half-open')), 'transient');
    assert.equal(classify(new BulkheadRejectedError('pool', 'queue-full')), 'transient');
    assert.equal(classify(new RateLimitedError('api', 500)), 'transient');
  });

  test('an isolated circuit is permanent: an operator closed it on purpose', () => {
    assert.equal(classify(new IsolatedCircuitError('db')), 'permanent');
  });

  test('RetriesExhaustedError classifies as its cause', () => {
    assert.equal(classify(new RetriesExhaustedError(3, withStatus(503))), 'transient');
    assert.equal(classify(new RetriesExhaustedError(3, withStatus(404))), 'permanent');
  });

  test('an unknown failure gets the benefit of the doubt: transient', () => {
    assert.equal(classify(new Error('something odd')), 'transient');
    assert.equal(classify('a thrown string'), 'transient');
    assert.equal(classify(undefined), 'transient');
    assert.equal(classify(null), 'transient');
    assert.equal(classify(withCode('ESOMETHINGELSE')), 'transient');
  });

  test('isTransient agrees with classify', () => {
    assert.equal(isTransient(withStatus(503)), true);
    assert.equal(isTransient(withStatus(404)), false);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('Sun, 06 Nov 1994 08:49:00 GMT');

  test('delta-seconds become milliseconds', () => {
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter('0', now), 0);
    assert.equal(parseRetryAfter(' 3 ', now), 3_000);
    assert.equal(parseRetryAfter('1.5', now), 1_500);
  });

  test('the three HTTP-date forms are read relative to now, all as GMT', () => {
    assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', now), 37_000); // IMF-fixdate
    assert.equal(parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT', now), 37_000); // RFC 850
    assert.equal(parseRetryAfter('Sun Nov  6 08:49:37 1994', now), 37_000); // asctime, no zone: GMT
  });

  test('a date in the past means retry now: 0', () => {
    assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:00:00 GMT', now), 0);
  });

  test('anything else is no hint, including strings Date.parse would accept', () => {
    for (const value of [
      '',
      'soon',
      '-5',
      '1e3',
      '0x10',
      'May 1',
      'abc 12',
      '2015-10-21',
      '12abc',
      '1.5.2',
    ]) {
      assert.equal(parseRetryAfter(value, now), undefined, JSON.stringify(value));
    }
  });
});

describe('retryAfterOf', () => {
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');

  test('reads retryAfterMs from Bulwark errors and any error that carries it', () => {
    assert.equal(retryAfterOf(new BrokenCircuitError('db', 4_000, 'open'), now), 4_000);
    assert.equal(retryAfterOf(new RateLimitedError('api', 250), now), 250);
    assert.equal(retryAfterOf({ retryAfterMs: 0 }, now), 0);
  });

  test('ignores a negative or NaN retryAfterMs', () => {
    assert.equal(retryAfterOf({ retryAfterMs: -1 }, now), undefined);
    assert.equal(retryAfterOf({ retryAfterMs: Number.NaN }, now), undefined);
  });

  test('reads a retry-after header from headers or response.headers, plain objects or Headers', () => {
    assert.equal(retryAfterOf({ headers: { 'retry-after': '2' } }, now), 2_000);
    assert.equal(retryAfterOf({ headers: { 'Retry-After': '3' } }, now), 3_000);
    assert.equal(retryAfterOf({ headers: { 'retry-after': 4 } }, now), 4_000);
    assert.equal(retryAfterOf({ response: { headers: new Headers({ 'Retry-After': '5' }) } }, now), 5_000);
    assert.equal(
      retryAfterOf(
        { response: { headers: new Headers({ 'retry-after': 'Wed, 21 Oct 2015 07:28:09 GMT' }) } },
        now,
      ),
      9_000,
    );
  });

  test('gives undefined when there is no hint', () => {
    assert.equal(retryAfterOf(new Error('x'), now), undefined);
    assert.equal(retryAfterOf({ headers: new Headers() }, now), undefined);
    assert.equal(retryAfterOf({ headers: { 'retry-after': 'whenever' } }, now), undefined);
    assert.equal(retryAfterOf('text', now), undefined);
    assert.equal(retryAfterOf(null, now), undefined);
  });
});
