// The `extract` step: an HTML page to its title, plain text, Markdown and absolute links, with
// scripts, styles, navigation and other page chrome left out. Forgiving of broken HTML.
import { parseDocument } from 'htmlparser2';

/** What `extract` makes of a page. */
export interface ExtractedPage {
  /** `<title>`, else the first `<h1>`, else `''`; whitespace collapsed. */
  title: string;
  /** The content as plain text: one paragraph (heading, list item, ...) per line block, blank lines between. */
  text: string;
  /** The content as Markdown: headings, paragraphs, lists, links, emphasis, code, quotes, tables. */
  markdown: string;
  /** The content's links, in document order, once per address, resolved to absolute URLs. */
  links: { text: string; href: string }[];
}

type Document = ReturnType<typeof parseDocument>;
type Node = Document['children'][number];
type Element = Extract<Node, { type: 'tag' | 'script' | 'style' }>;

/** Never content: code, styling, embedded objects, forms and the page's navigation. */
const DROPPED = new Set([
  'script',
  'style',
  'noscript',
  'template',
  'head',
  'title',
  'meta',
  'link',
  'base',
  'svg',
  'math',
  'canvas',
  'iframe',
  'object',
  'embed',
  'nav',
  'aside',
  'form',
  'button',
  'select',
  'input',
  'textarea',
  'dialog',
]);

/** Site chrome unless it belongs to the content (an article's own header is kept). */
const CHROME = new Set(['header', 'footer']);
const CONTENT = new Set(['main', 'article', 'section']);

const BLOCKS = new Set([
  'address',
  'article',
  'blockquote',
  'body',
  'dd',
  'details',
  'div',
  'dl',
  'dt',
  'fieldset',
  'figcaption',
  'figure',
  'footer',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'header',
  'hr',
  'html',
  'li',
  'main',
  'ol',
  'p',
  'pre',
  'section',
  'summary',
  'table',
  'tbody',
  'td',
  'tfoot',
  'th',
  'thead',
  'tr',
  'ul',
]);

/** Deeper than this, an element's content is taken as plain text: no recursion on hostile nesting. */
const MAX_DEPTH = 200;

/** A block of output in both forms. */
interface Block {
  md: string;
  text: string;
  /** A list: inside a list item it follows the item's text on the next line, keeping the list tight. */
  list?: true;
}

/** Extracts `html`, fetched from `pageUrl` (relative links are resolved against it, or against `<base href>`). */
export function extractPage(html: string, pageUrl: string): ExtractedPage {
  const doc = parseDocument(html, {
    decodeEntities: true,
    lowerCaseTags: true,
    lowerCaseAttributeNames: true,
  });
  const base = baseUrl(doc, pageUrl);
  const root = find(doc, (e) => e.name === 'main') ?? find(doc, (e) => e.name === 'body') ?? doc;
  const walker = new Walker(base);
  const blocks = walker.blocks(root.children, 0, false);
  const titleElement = find(doc, (e) => e.name === 'title');
  let title = titleElement === undefined ? '' : collapse(textOf(titleElement));
  if (title === '') {
    const h1 = find(root, (e) => e.name === 'h1');
    title = h1 === undefined ? '' : collapse(textOf(h1));
  }
  return {
    title,
    text: blocks
      .map((b) => b.text)
      .filter((t) => t !== '')
      .join('\n\n'),
    markdown: blocks.length === 0 ? '' : `${blocks.map((b) => b.md).join('\n\n')}\n`,
    links: walker.links,
  };
}

class Walker {
  readonly links: { text: string; href: string }[] = [];
  readonly #seen = new Set<string>();
  readonly #base: URL | undefined;

  constructor(base: URL | undefined) {
    this.#base = base;
  }

  /** The blocks of a run of nodes: inline runs become paragraphs, block elements their own blocks. */
  blocks(nodes: readonly Node[], depth: number, inContent: boolean): Block[] {
    const out: Block[] = [];
    let inline: Node[] = [];
    const flush = () => {
      if (inline.length === 0) return;
      const { md, text } = this.inline(inline, depth);
      inline = [];
      const paragraph = md.trim();
      if (paragraph !== '') out.push({ md: escapeBlockStart(paragraph), text: text.trim() });
    };
    for (const node of nodes) {
      if (!isElement(node) || !BLOCKS.has(node.name)) {
        if (isElement(node) && isDropped(node, inContent)) continue;
        inline.push(node);
        continue;
      }
      flush();
      if (isDropped(node, inContent)) continue;
      out.push(...this.block(node, depth + 1, inContent || CONTENT.has(node.name)));
    }
    flush();
    return out;
  }

  block(e: Element, depth: number, inContent: boolean): Block[] {
    if (depth > MAX_DEPTH) {
      const text = collapse(textOf(e));
      return text === '' ? [] : [{ md: escapeBlockStart(escapeInline(text)), text }];
    }
    const name = e.name;
    const heading = /^h([1-6])$/.exec(name);
    if (heading !== null) {
      const { md, text } = this.inline(e.children, depth);
      const title = md.trim();
      return title === '' ? [] : [{ md: `${'#'.repeat(Number(heading[1]))} ${title}`, text: text.trim() }];
    }
    switch (name) {
      case 'hr':
        return [{ md: '---', text: '' }];
      case 'pre': {
        const code = textOf(e).replace(/^\n/, '').replace(/\s+$/, '');
        if (code === '') return [];
        const language = codeLanguage(e);
        const fence = '`'.repeat(Math.max(3, longestRun(code, '`') + 1));
        return [{ md: `${fence}${language}\n${code}\n${fence}`, text: code }];
      }
      case 'blockquote': {
        const inner = this.blocks(e.children, depth, inContent);
        if (inner.length === 0) return [];
        const md = inner
          .map((b) => b.md)
          .join('\n\n')
          .split('\n')
          .map((line) => (line === '' ? '>' : `> ${line}`))
          .join('\n');
        return [{ md, text: inner.map((b) => b.text).join('\n\n') }];
      }
      case 'ul':
      case 'ol':
        return this.list(e, depth, inContent);
      case 'table':
        return this.table(e, depth);
      default:
        return this.blocks(e.children, depth, inContent);
    }
  }

  list(e: Element, depth: number, inContent: boolean): Block[] {
    const ordered = e.name === 'ol';
    const startAttr = Number.parseInt(e.attribs.start ?? '1', 10);
    let n = Number.isFinite(startAttr) ? startAttr : 1;
    const md: string[] = [];
    const text: string[] = [];
    for (const item of e.children) {
      // Text straight inside a list (broken HTML) is taken as an item of its own.
      if (!isElement(item) || item.name !== 'li') {
        if (isElement(item) && isDropped(item, inContent)) continue;
        const loose = this.inline([item], depth);
        if (loose.md.trim() === '') continue;
        md.push(`${ordered ? `${n++}.` : '-'} ${loose.md.trim()}`);
        text.push(loose.text.trim());
        continue;
      }
      const marker = ordered ? `${n++}.` : '-';
      const inner = this.blocks(item.children, depth + 1, inContent);
      const indent = ' '.repeat(marker.length + 1);
      const body = inner.map((b, i) => (i === 0 ? b.md : `${b.list ? '\n' : '\n\n'}${b.md}`)).join('');
      const lines = body.split('\n');
      md.push(
        [`${marker} ${lines[0] ?? ''}`, ...lines.slice(1).map((l) => (l === '' ? '' : indent + l))].join(
          '\n',
        ),
      );
      text.push(inner.map((b) => b.text).join('\n'));
    }
    if (md.length === 0) return [];
    return [{ md: md.join('\n'), text: text.filter((t) => t !== '').join('\n'), list: true }];
  }

  table(e: Element, depth: number): Block[] {
    const rows: Block[][] = [];
    const visit = (nodes: readonly Node[]) => {
      for (const node of nodes) {
        if (!isElement(node)) continue;
        if (node.name === 'tr') {
          rows.push(
            node.children
              .filter((c): c is Element => isElement(c) && (c.name === 'td' || c.name === 'th'))
              .map((cell) => {
                const { md, text } = this.inline(cell.children, depth);
                return { md: md.trim().replaceAll('\n', ' ').replaceAll('|', '\\|'), text: text.trim() };
              }),
          );
        } else if (node.name === 'thead' || node.name === 'tbody' || node.name === 'tfoot') {
          visit(node.children);
        }
      }
    };
    visit(e.children);
    const width = Math.max(0, ...rows.map((r) => r.length));
    if (width === 0) return [];
    const line = (cells: Block[]) =>
      `| ${Array.from({ length: width }, (_, i) => cells[i]?.md ?? '').join(' | ')} |`;
    const md = [line(rows[0]!), `|${' --- |'.repeat(width)}`, ...rows.slice(1).map(line)].join('\n');
    const text = rows.map((r) => r.map((c) => c.text).join('\t')).join('\n');
    return [{ md, text }];
  }

  /** Inline content: text with its emphasis, code and links; whitespace collapsed as a browser would. */
  inline(nodes: readonly Node[], depth: number): Block {
    let md = '';
    let text = '';
    for (const node of nodes) {
      if (node.type === 'text') {
        const t = node.data.replace(/\s+/g, ' ');
        md += escapeInline(t);
        text += t;
        continue;
      }
      if (!isElement(node) || DROPPED.has(node.name) || isHidden(node)) continue;
      if (depth > MAX_DEPTH) {
        const t = textOf(node).replace(/\s+/g, ' ');
        md += escapeInline(t);
        text += t;
        continue;
      }
      const next = depth + 1;
      switch (node.name) {
        case 'br':
          // A Markdown hard break; a space before it would make the line end in two.
          md = `${md.replace(/ +$/, '')}\\\n`;
          text = `${text.replace(/ +$/, '')}\n`;
          break;
        case 'strong':
        case 'b':
        case 'em':
        case 'i': {
          const inner = this.inline(node.children, next);
          md += wrap(inner.md, node.name === 'strong' || node.name === 'b' ? '**' : '*');
          text += inner.text;
          break;
        }
        case 'code':
        case 'kbd':
        case 'samp': {
          const code = textOf(node).replace(/\s+/g, ' ');
          if (code.trim() === '') break;
          const ticks = '`'.repeat(longestRun(code, '`') + 1);
          const pad = code.startsWith('`') || code.endsWith('`') ? ' ' : '';
          md += `${ticks}${pad}${code}${pad}${ticks}`;
          text += code;
          break;
        }
        case 'img': {
          const alt = collapse(node.attribs.alt ?? '');
          const src = this.#resolve(node.attribs.src);
          if (src !== undefined) md += `![${escapeInline(alt)}](${linkTarget(src)})`;
          text += alt;
          break;
        }
        case 'a': {
          const inner = this.inline(node.children, next);
          const label = inner.md.trim();
          const href = this.#resolve(node.attribs.href);
          text += inner.text;
          if (href === undefined || label === '') {
            md += inner.md;
            break;
          }
          md += `[${label}](${linkTarget(href)})`;
          if (!this.#seen.has(href)) {
            this.#seen.add(href);
            this.links.push({ text: collapse(inner.text), href });
          }
          break;
        }
        default: {
          // A block inside inline content (a <div> in a <span>, a <p> in a <td>): its text, inline.
          const inner = this.inline(node.children, next);
          const spaced = BLOCKS.has(node.name);
          md += spaced ? ` ${inner.md} ` : inner.md;
          text += spaced ? ` ${inner.text} ` : inner.text;
        }
      }
    }
    return { md: tidy(md), text: tidy(text) };
  }

  /** An absolute http(s), mailto or other safe URL, or undefined for scripts, data and garbage. */
  #resolve(href: string | undefined): string | undefined {
    if (href === undefined) return undefined;
    const raw = href.trim();
    if (raw === '') return undefined;
    let url: URL;
    try {
      url = this.#base === undefined ? new URL(raw) : new URL(raw, this.#base);
    } catch {
      return undefined;
    }
    if (url.protocol === 'javascript:' || url.protocol === 'data:' || url.protocol === 'vbscript:')
      return undefined;
    return url.href;
  }
}

function isElement(node: Node): node is Element {
  return node.type === 'tag' || node.type === 'script' || node.type === 'style';
}

function isHidden(e: Element): boolean {
  return e.attribs.hidden !== undefined || e.attribs['aria-hidden'] === 'true';
}

function isDropped(e: Element, inContent: boolean): boolean {
  return DROPPED.has(e.name) || isHidden(e) || (CHROME.has(e.name) && !inContent);
}

/** The first element (depth first) that matches, without recursion. */
function find(root: Document | Element, match: (e: Element) => boolean): Element | undefined {
  const stack: Node[] = [...root.children].reverse();
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (!isElement(node)) continue;
    if (match(node)) return node;
    for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]!);
  }
  return undefined;
}

/** All the text under `e`, scripts and styles left out, without recursion. */
function textOf(e: Element): string {
  let out = '';
  const stack: Node[] = [...e.children].reverse();
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (node.type === 'text') out += node.data;
    else if (isElement(node) && !DROPPED.has(node.name)) {
      for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]!);
    }
  }
  return out;
}

function baseUrl(doc: Document, pageUrl: string): URL | undefined {
  const page = URL.canParse(pageUrl) ? new URL(pageUrl) : undefined;
  const href = find(doc, (e) => e.name === 'base' && e.attribs.href !== undefined)?.attribs.href;
  if (href !== undefined && URL.canParse(href, page?.href)) return new URL(href, page);
  return page;
}

function codeLanguage(pre: Element): string {
  const code = pre.children.find((c): c is Element => isElement(c) && c.name === 'code');
  const classes = `${code?.attribs.class ?? ''} ${pre.attribs.class ?? ''}`;
  return /(?:^|\s)(?:language|lang)-([\w+#-]+)/.exec(classes)?.[1] ?? '';
}

function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** Spaces collapsed, but the hard breaks (`\` + newline, or a newline in text) kept without spaces around them. */
function tidy(text: string): string {
  return text.replace(/[ \t]{2,}/g, ' ').replace(/ ?\n ?/g, '\n');
}

function wrap(md: string, mark: string): string {
  const inner = md.trim();
  if (inner === '') return md;
  // Emphasis must hug its text: the spaces go outside the marks.
  const lead = md.startsWith(' ') ? ' ' : '';
  const trail = md.endsWith(' ') ? ' ' : '';
  return `${lead}${mark}${inner}${mark}${trail}`;
}

function longestRun(text: string, char: string): number {
  let longest = 0;
  let current = 0;
  for (const c of text) {
    current = c === char ? current + 1 : 0;
    if (current > longest) longest = current;
  }
  return longest;
}

/** Characters that would otherwise turn text into Markdown syntax. */
function escapeInline(text: string): string {
  return text.replace(/[\\`*_[\]<>]/g, '\\$&');
}

/** A paragraph that starts like a heading, quote or list item is escaped so it stays a paragraph. */
function escapeBlockStart(md: string): string {
  return md.replace(/^(\s*)([#>+-])(?=\s|$)/, '$1\\$2').replace(/^(\s*\d+)([.)])(?=\s|$)/, '$1\\$2');
}

/** Parentheses and spaces in a link target would end it early. */
function linkTarget(href: string): string {
  return href.replace(/[()\s]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}
