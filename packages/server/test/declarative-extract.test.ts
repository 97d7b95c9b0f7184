// The `extract` step's extractPage: real-world-ish pages (chrome, scripts, entities, relative
// links, a <base>), broken HTML, and hostile nesting.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { extractPage } from '../src/declarative/steps/extract.ts';

const BLOG = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>  Circuit   breakers,
    explained &mdash; Example Blog </title>
  <base href="/blog/">
  <link rel="stylesheet" href="/main.css">
  <style>.x { color: red }</style>
  <script>window.dataLayer = []; function gtag(){}</script>
</head>
<body class="post">
  <header class="site"><a href="/">Example</a><nav><ul><li><a href="/about">About</a></li></ul></nav></header>
  <div id="cookie" hidden>We use cookies <button>OK</button></div>
  <article>
    <header><h1>Circuit breakers, explained</h1><p class="meta">By <a href="/authors/ada">Ada</a></p></header>
    <p>A breaker <strong>stops</strong> calls to a dependency that is <em>failing</em>,
       so that it can recover. Read <a href="retry.html#budget">the retry post</a> first.</p>
    <h2>States</h2>
    <ul>
      <li><b>Closed</b>: calls go through.</li>
      <li><b>Open</b>: calls fail fast
        <ul><li>for <code>openMs</code></li></ul>
      </li>
      <li><b>Half-open</b>: a few probes.</li>
    </ul>
    <pre><code class="language-ts">const b = circuitBreaker({ failureRate: 0.5 });
if (x &lt; 1) b.isolate();</code></pre>
    <blockquote>Fail fast, recover slowly.</blockquote>
    <p>Math: 2 * 3 &gt; 5 and [brackets] stay text. <img src="/img/diagram.png" alt="State diagram"></p>
    <aside>Related posts: <a href="/other">Other</a></aside>
    <script>trackRead()</script>
    <noscript><img src="/pixel.gif"></noscript>
  </article>
  <footer><p>© 2025 Example. <a href="/privacy">Privacy</a></p></footer>
</body>
</html>`;

describe('extractPage', () => {
  test('a blog post: the article as Markdown and text, without the chrome, links made absolute', () => {
    const page = extractPage(BLOG, 'https://example.test/blog/circuit-breakers');
    assert.equal(page.title, 'Circuit breakers, explained — Example Blog');
    assert.equal(
      page.markdown,
      [
        '# Circuit breakers, explained',
        '',
        'By [Ada](https://example.test/authors/ada)',
        '',
        'A breaker **stops** calls to a dependency that is *failing*, so that it can recover. Read [the retry post](https://example.test/blog/retry.html#budget) first.',
        '',
        '## States',
        '',
        '- **Closed**: calls go through.',
        '- **Open**: calls fail fast',
        '  - for `openMs`',
        '- **Half-open**: a few probes.',
        '',
        '```ts',
        'const b = circuitBreaker({ failureRate: 0.5 });',
        'if (x < 1) b.isolate();',
        '```',
        '',
        '> Fail fast, recover slowly.',
        '',
        'Math: 2 \\* 3 \\> 5 and \\[brackets\\] stay text. ![State diagram](https://example.test/img/diagram.png)',
        '',
      ].join('\n'),
    );
    assert.deepEqual(page.links, [
      { text: 'Ada', href: 'https://example.test/authors/ada' },
      { text: 'the retry post', href: 'https://example.test/blog/retry.html#budget' },
    ]);
    assert.match(page.text, /^Circuit breakers, explained\n\nBy Ada\n\nA breaker stops calls/);
    for (const noise of ['gtag', 'cookies', 'About', 'Related', 'Privacy', 'trackRead', 'color: red']) {
      assert.ok(!page.text.includes(noise), noise);
      assert.ok(!page.markdown.includes(noise), noise);
    }
  });

  test('without <main> or <article> the body is the content, its site header and footer left out', () => {
    const page = extractPage(
      '<body><header>Site</header><h2>Only</h2><p>text &amp; more</p><footer>foot</footer></body>',
      'http://h/',
    );
    assert.equal(page.markdown, '## Only\n\ntext & more\n');
    assert.equal(page.title, '');
  });

  test('a fragment without <head> keeps its <title> out of the content', () => {
    const page = extractPage('<title>Down</title><p>try later</p>', 'http://h/');
    assert.equal(page.title, 'Down');
    assert.equal(page.markdown, 'try later\n');
  });

  test('the title falls back to the first h1', () => {
    assert.equal(extractPage('<main><h1>Heading <i>one</i></h1></main>', 'http://h/').title, 'Heading one');
  });

  test('broken HTML still gives its text: unclosed tags, stray list items, text straight in a list', () => {
    const page = extractPage(
      '<p>unclosed <b>bold <i>both</p><ul>loose<li>item<p>para in item</ul><div><li>stray',
      'http://h/',
    );
    assert.equal(page.markdown, 'unclosed **bold *both***\n\n- loose\n- item\n\n  para in item\n\nstray\n');
  });

  test('scripts, data and unparsable links are kept as text only', () => {
    const page = extractPage(
      '<p><a href="javascript:alert(1)">js</a> <a href="data:text/html,x">data</a> <a href="http://[bad">bad</a> <a href="mailto:a@b.c">mail</a></p>',
      'not a url',
    );
    assert.equal(page.markdown, 'js data bad [mail](mailto:a@b.c)\n');
    assert.deepEqual(page.links, [{ text: 'mail', href: 'mailto:a@b.c' }]);
  });

  test('text that looks like Markdown stays text; code with backticks gets a longer fence', () => {
    const page = extractPage(
      '<p># not a heading</p><p>1. not a list</p><p>use <code>a`b</code></p><pre>```\nfenced\n```</pre>',
      'http://h/',
    );
    assert.equal(
      page.markdown,
      '\\# not a heading\n\n1\\. not a list\n\nuse ``a`b``\n\n````\n```\nfenced\n```\n````\n',
    );
  });

  test('a table becomes a Markdown table', () => {
    const page = extractPage(
      '<table><thead><tr><th>a</th><th>b|c</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>',
      'http://h/',
    );
    assert.equal(page.markdown, '| a | b\\|c |\n| --- | --- |\n| 1 |  |\n');
  });

  test('hostile nesting neither overflows the stack nor loses the text', () => {
    const depth = 20_000;
    const page = extractPage(
      `${'<div><span>'.repeat(depth)}deep${'</span></div>'.repeat(depth)}`,
      'http://h/',
    );
    assert.equal(page.markdown, 'deep\n');
    assert.equal(page.text, 'deep');
  });

  test('an empty page gives empty fields', () => {
    assert.deepEqual(extractPage('', 'http://h/'), { title: '', text: '', markdown: '', links: [] });
  });
});
