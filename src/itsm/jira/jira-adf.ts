/**
 * Atlassian Document Format, as much of it as the gateway reads (code blocks, text) and writes (paragraphs of text).
 * Pure functions: the simulator and the tests use them too.
 */

export const ACTIONS_LANGUAGE = 'changegate';

export interface AdfNode {
  type: string;
  text?: string;
  attrs?: Record<string, unknown>;
  content?: AdfNode[];
  marks?: unknown[];
}

export interface AdfDoc {
  type: 'doc';
  version: 1;
  content: AdfNode[];
}

function isNode(value: unknown): value is AdfNode {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}

/** The text under a node, its text nodes concatenated (hard breaks as newlines). */
export function adfText(node: unknown): string {
  if (!isNode(node)) return '';
  if (node.type === 'text') return typeof node.text === 'string' ? node.text : '';
  if (node.type === 'hardBreak') return '\n';
  const parts = (Array.isArray(node.content) ? node.content : []).map(adfText);
  // Children of a container of blocks are lines; children of a paragraph or code block run on.
  const inline = node.type === 'paragraph' || node.type === 'heading' || node.type === 'codeBlock';
  return parts.join(inline ? '' : '\n');
}

/** Every `codeBlock` node whose language is `changegate`, depth first, in document order. */
function adfCodeBlocks(node: unknown, found: string[]): void {
  if (!isNode(node)) return;
  if (node.type === 'codeBlock' && node.attrs?.language === ACTIONS_LANGUAGE) {
    found.push(adfText(node));
    return;
  }
  if (Array.isArray(node.content)) for (const child of node.content) adfCodeBlocks(child, found);
}

const FENCE = /^[ \t]*```[ \t]*changegate[ \t]*\r?\n([\s\S]*?)\r?\n[ \t]*```[ \t]*$/gm;
// Webhook payloads carry the description as wiki markup, where a code block is {code:changegate}…{code}.
const WIKI = /\{code:(?:language=)?changegate\}([\s\S]*?)\{code\}/g;

export type CodeBlockResult = { found: false } | { found: true; text: string } | { found: true; error: string };

/**
 * The identity actions a description carries: one `changegate` code block (an ADF codeBlock with
 * attrs.language == "changegate"; in plain text a ``` fence named changegate, or wiki markup {code:changegate}).
 * Two such blocks are refused rather than guessed between.
 */
export function extractActionsBlock(description: unknown): CodeBlockResult {
  const blocks: string[] = [];
  if (typeof description === 'string') {
    for (const m of description.matchAll(FENCE)) blocks.push(m[1] ?? '');
    for (const m of description.matchAll(WIKI)) blocks.push(m[1] ?? '');
  } else {
    adfCodeBlocks(description, blocks);
  }
  if (blocks.length === 0) return { found: false };
  if (blocks.length > 1) return { found: true, error: `has ${blocks.length} code blocks tagged ${ACTIONS_LANGUAGE}: put every action in one` };
  return { found: true, text: blocks[0] as string };
}

/** A comment body: one paragraph per line of text (empty lines dropped; ADF refuses empty text nodes). */
export function adfParagraphs(text: string): AdfDoc {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  return {
    type: 'doc',
    version: 1,
    content: (lines.length > 0 ? lines : ['-']).map((line) => ({ type: 'paragraph', content: [{ type: 'text', text: line }] })),
  };
}

/**
 * The structural rules Jira enforces on a comment body that the gateway could break: a doc of version 1 whose blocks
 * are paragraphs (or other known blocks) and whose text nodes are non-empty strings. Returns the problems, with paths.
 */
export function adfProblems(body: unknown): string[] {
  const problems: string[] = [];
  if (!isNode(body) || body.type !== 'doc') return ['body: must be an ADF document ({"type": "doc", "version": 1, "content": [...]})'];
  if ((body as { version?: unknown }).version !== 1) problems.push('body.version: must be 1');
  if (!Array.isArray(body.content)) return [...problems, 'body.content: must be an array'];
  const BLOCKS = new Set(['paragraph', 'codeBlock', 'heading', 'bulletList', 'orderedList', 'listItem', 'blockquote', 'rule', 'panel']);
  const INLINE = new Set(['text', 'hardBreak', 'mention', 'emoji', 'inlineCard']);
  const walk = (node: unknown, path: string, block: boolean) => {
    if (!isNode(node)) {
      problems.push(`${path}: must be a node with a type`);
      return;
    }
    const allowed = block ? BLOCKS : INLINE;
    if (!allowed.has(node.type)) problems.push(`${path}.type: '${node.type}' is not allowed here`);
    if (node.type === 'text' && (typeof node.text !== 'string' || node.text.length === 0)) problems.push(`${path}.text: must be a non-empty string`);
    if (node.content !== undefined) {
      if (!Array.isArray(node.content)) problems.push(`${path}.content: must be an array`);
      else node.content.forEach((c, i) => walk(c, `${path}.content[${i}]`, node.type !== 'paragraph' && node.type !== 'heading' && node.type !== 'codeBlock'));
    }
  };
  body.content.forEach((c, i) => walk(c, `body.content[${i}]`, true));
  return problems;
}
