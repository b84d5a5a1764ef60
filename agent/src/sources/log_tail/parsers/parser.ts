/** What a log_tail parser is: one instance per tailed file, fed complete lines in order. */
import type { EventDraft } from '../../common/emit.js';

export interface LineContext {
  /** The file's current path. */
  path: string;
  /** Byte offset of the line's first byte in the file. */
  offset: number;
  now: Date;
}

export interface Parser {
  /** Parses one complete line (no newline) into zero or more event drafts. */
  push(line: string, ctx: LineContext): EventDraft[];
  /** Offset of the first line still held for grouping (the read position must not be committed past it). */
  held(): number | undefined;
  /** Emits what is held when it has waited `olderThanMs` (0: now): idle file, rotation, stop. */
  flush(now: Date, olderThanMs: number): EventDraft[];
  /**
   * A parser that holds lines: its state now, for `rewind` to put back when the lines pushed
   * since are read again (their batch was not written). Stateless parsers have neither.
   */
  mark?(): unknown;
  rewind?(mark: unknown): void;
}

/** The `log.line` event every parser falls back to: an unparsed line is kept, never dropped. */
export function logLine(line: string, ctx: LineContext, extra?: Record<string, unknown>): EventDraft {
  return {
    category: 'system',
    type: 'log.line',
    action: 'log',
    message: line,
    attributes: { file: ctx.path, offset: ctx.offset, ...extra },
  };
}

/** A stateless parser from a function. */
export function lineParser(fn: (line: string, ctx: LineContext) => EventDraft | null): Parser {
  return {
    push: (line, ctx) => [fn(line, ctx) ?? logLine(line, ctx)],
    held: () => undefined,
    flush: () => [],
  };
}
