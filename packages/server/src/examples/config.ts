// The built-in examples' dependencies, as a bulwark.yaml would declare them: `bulwark start`
// without a configuration file parses this text like any file, with the upstream's URL filled in.

/** The variable that carries the example upstream's URL into the text below. */
export const EXAMPLES_URL_VARIABLE = 'BULWARK_EXAMPLES_URL';

export const EXAMPLES_CONFIG = `# The pet shop examples: three HTTP dependencies on one flaky loopback API.
dependencies:
  petstore:
    kind: http
    critical: true
    description: The pet shop's inventory API (answers 503 now and then, on purpose)
    timeout: 2s
    retry: { maxAttempts: 3, base: 50ms, max: 500ms, jitter: 0.2 }
    breaker: { window: { kind: count, size: 20 }, failureRate: 0.5, minimumCalls: 10, open: 10s }
    http: { baseUrl: "\${${EXAMPLES_URL_VARIABLE}}" }
    health: { path: /health, interval: 10s }
  payments:
    kind: http
    critical: true
    description: Card payments; a retried charge carries the same Idempotency-Key
    timeout: 3s
    retry: { maxAttempts: 4, base: 100ms, max: 1s, jitter: 0.2 }
    breaker: { window: { kind: consecutive, failures: 5 }, open: 15s }
    bulkhead: { maxConcurrent: 8, maxQueue: 32, queueTimeout: 1s }
    http: { baseUrl: "\${${EXAMPLES_URL_VARIABLE}}" }
    health: { path: /health, interval: 10s }
  notifications:
    kind: http
    description: Sends e-mails to adopters and staff (not critical)
    timeout: 1s
    retry: { maxAttempts: 2, base: 100ms }
    http: { baseUrl: "\${${EXAMPLES_URL_VARIABLE}}" }
`;
