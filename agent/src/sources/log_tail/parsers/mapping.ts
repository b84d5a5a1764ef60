/**
 * `json` and `regex` parsers: a line becomes named values (a JSON object's fields,
 * or a regular expression's named groups), and `mapping` says how event fields are
 * built from them. A mapping value is a template: `{name}` (or `{a.b.c}` into JSON)
 * is replaced by that value; a template that is exactly one `{name}` keeps the
 * value's type (a number stays a number). A line that does not parse, or does not
 * match, is a `log.line`.
 */
import { CATEGORIES, type Category, OUTCOMES, SEVERITIES, type Severity } from '@sealtrail/event';
import type { EventDraft } from '../../common/emit.js';
import { type LineContext, lineParser, logLine, type Parser } from './parser.js';

export interface MappingOptions {
  mapping: Record<string, string>;
  category: Category;
  event_type: string;
  action: string;
  /** Keep the parsed values in `attributes.fields`. */
  keep_fields: boolean;
}

/** Event fields a mapping may set. */
export const MAPPING_TARGETS =
  /^(time|category|type|action|severity|outcome|message|actor\.(user|uid|ip|session_id|user_agent|request_id)|resource\.(kind|name|id)|attributes\.[A-Za-z0-9_.-]+)$/;

type Lookup = (name: string) => unknown;

function render(template: string, lookup: Lookup): unknown {
  const whole = /^\{([^{}]+)\}$/.exec(template);
  if (whole) return lookup(whole[1]!.trim());
  return template.replace(/\{([^{}]+)\}/g, (_, name: string) => {
    const v = lookup(name.trim());
    return v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
}

const SEVERITY_WORDS: Record<string, Severity> = {
  trace: 'info',
  debug: 'info',
  info: 'info',
  information: 'info',
  informational: 'info',
  notice: 'low',
  low: 'low',
  warn: 'medium',
  warning: 'medium',
  medium: 'medium',
  error: 'high',
  err: 'high',
  high: 'high',
  critical: 'critical',
  crit: 'critical',
  alert: 'critical',
  emerg: 'critical',
  emergency: 'critical',
  fatal: 'critical',
  panic: 'critical',
};

function severityOf(v: unknown): Severity | undefined {
  if (typeof v === 'number') {
    // syslog priorities 0..7
    return v <= 2 ? 'critical' : v === 3 ? 'high' : v === 4 ? 'medium' : v === 5 ? 'low' : 'info';
  }
  const s = String(v).toLowerCase();
  return (SEVERITIES as readonly string[]).includes(s) ? (s as Severity) : SEVERITY_WORDS[s];
}

function outcomeOf(v: unknown): EventDraft['outcome'] {
  const s = String(v).toLowerCase();
  if ((OUTCOMES as readonly string[]).includes(s)) return s as EventDraft['outcome'];
  if (/^(ok|true|succeeded|allow(ed)?|accept(ed)?|pass(ed)?|200|201|204)$/.test(s)) return 'success';
  if (/^(fail(ed)?|false|error|deny|denied|reject(ed)?|block(ed)?|401|403)$/.test(s)) return 'failure';
  return 'unknown';
}

function timeOf(v: unknown): Date | string | undefined {
  if (typeof v === 'number') return new Date(v < 1e11 ? v * 1000 : v); // seconds or milliseconds
  if (typeof v === 'string' && v !== '') return v;
  return undefined;
}

function typeOf(v: unknown, fallback: string): string {
  const s = String(v ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9_.]+/g, '_')
    .replace(/^[._]+|[._]+$/g, '')
    .replace(/\.{2,}/g, '.');
  return s === '' ? fallback : s.slice(0, 128);
}

export function applyMapping(
  opts: MappingOptions,
  lookup: Lookup,
  fields: unknown,
  line: string,
): EventDraft {
  const d: EventDraft = { category: opts.category, type: opts.event_type, action: opts.action };
  const attributes: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [target, template] of Object.entries(opts.mapping)) {
    const v = render(template, lookup);
    if (v === undefined || v === null || v === '') continue;
    const [head, ...rest] = target.split('.');
    switch (head) {
      case 'time':
        d.time = timeOf(v);
        break;
      case 'category': {
        const c = String(v).toLowerCase();
        if ((CATEGORIES as readonly string[]).includes(c)) d.category = c as Category;
        else problems.push(`category "${c}" is not one of ${CATEGORIES.join(', ')}`);
        break;
      }
      case 'type':
        d.type = typeOf(v, opts.event_type);
        break;
      case 'action':
        d.action = String(v);
        break;
      case 'severity': {
        const s = severityOf(v);
        if (s) d.severity = s;
        else problems.push(`severity "${String(v)}" not understood`);
        break;
      }
      case 'outcome':
        d.outcome = outcomeOf(v);
        break;
      case 'message':
        d.message = typeof v === 'string' ? v : JSON.stringify(v);
        break;
      case 'actor':
        d.actor = { ...d.actor, [rest[0]!]: typeof v === 'object' ? JSON.stringify(v) : String(v) };
        break;
      case 'resource':
        d.resource = { ...d.resource, [rest[0]!]: typeof v === 'object' ? JSON.stringify(v) : String(v) };
        break;
      case 'attributes':
        attributes[rest.join('.')] = v;
        break;
    }
  }
  if (d.message === undefined) d.message = line;
  if (opts.keep_fields) attributes.fields = fields;
  if (problems.length > 0) attributes.mapping_problems = problems;
  d.attributes = attributes;
  return d;
}

function dig(obj: unknown, path: string): unknown {
  let node = obj;
  for (const part of path.split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

export function jsonParser(opts: MappingOptions): Parser {
  return lineParser((line, ctx: LineContext) => {
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      return logLine(line, ctx, { parse_error: 'not JSON' });
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      return logLine(line, ctx, { parse_error: 'not a JSON object' });
    }
    const d = applyMapping(opts, (name) => dig(obj, name), obj, line);
    d.attributes = { ...d.attributes, file: ctx.path };
    return d;
  });
}

export function regexParser(opts: MappingOptions & { pattern: string }): Parser {
  const re = new RegExp(opts.pattern);
  return lineParser((line, ctx) => {
    const m = re.exec(line);
    if (!m) return null;
    const groups = m.groups ?? {};
    const d = applyMapping(opts, (name) => groups[name], groups, line);
    d.attributes = { ...d.attributes, file: ctx.path };
    return d;
  });
}
