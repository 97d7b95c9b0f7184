// The built-in examples' dependencies and declarative workflow, as a bulwark.yaml would declare
// them: `bulwark start` without a configuration file parses this text like any file, with the
// upstream's URL filled in.

/** The variable that carries the example upstream's URL into the text below. */
export const EXAMPLES_URL_VARIABLE = 'BULWARK_EXAMPLES_URL';

export const EXAMPLES_CONFIG = `# The pet shop examples: three HTTP dependencies on one flaky loopback API,
# and web, for any site, which the site-to-document workflow reads.
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
  web:
    kind: http
    description: Any web site, for the site-to-document workflow (absolute URLs, no base)
    timeout: 5s
    retry: { maxAttempts: 2, base: 200ms }
    # One dependency for every site: a breaker would let one site that is down stop the others.
    breaker: false

workflows:
  site-to-document:
    description: Fetches a web page, extracts its content and writes it as a Markdown document; a site that is down gives a short "site unavailable" document and a degraded run
    example:
      url: "\${${EXAMPLES_URL_VARIABLE}}/pages/adoption-guide"
    steps:
      source:
        uses: transform
        value:
          url: "{{ input.url | default('\${${EXAMPLES_URL_VARIABLE}}/pages/adoption-guide') }}"
      fetch:
        uses: http
        dependency: web
        url: "{{ steps.source.url }}"
        headers: { accept: "text/html" }
        maxBytes: 2MiB
        retry: { maxAttempts: 2, base: 500ms }
        fallback:
          value:
            status: 0
            headers: {}
            body: "<title>Site unavailable</title><p>{{ steps.source.url | html }} could not be fetched: {{ error.message | html }}</p>"
      page:
        uses: extract
        html: "{{ steps.fetch.body }}"
        url: "{{ steps.source.url }}"
      document:
        uses: transform
        value:
          name: "{{ steps.page.title | slug }}"
          text: "# {{ steps.page.title }}\\n\\nSource: <{{ steps.source.url }}>\\n\\n{{ steps.page.markdown }}"
      store:
        uses: file.write
        path: "documents/{{ steps.document.name }}.md"
        content: "{{ steps.document.text }}"
    output:
      document: "{{ steps.store.path }}"
      title: "{{ steps.page.title }}"
      bytes: "{{ steps.store.bytes }}"
      links: "{{ steps.page.links }}"
`;
