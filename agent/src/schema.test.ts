import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { agentJsonSchema, agentJsonSchemaText } from './schema.js';

const FILE = fileURLToPath(new URL('../../docs/schema/agent.schema.json', import.meta.url));

describe('agent.yaml JSON Schema', () => {
  it('docs/schema/agent.schema.json is up to date (npm run build && npm run schema -w agent)', () => {
    expect(readFileSync(FILE, 'utf8')).toBe(agentJsonSchemaText());
  });

  it('names every source type and refuses unknown keys', () => {
    const s = agentJsonSchema() as {
      additionalProperties: boolean;
      properties: { sources: { items: { oneOf: { title: string; additionalProperties: boolean }[] } } };
    };
    expect(s.additionalProperties).toBe(false);
    const variants = s.properties.sources.items.oneOf;
    expect(variants.map((v) => v.title).sort()).toEqual(
      ['file_integrity', 'http_ingest', 'inventory', 'journald', 'log_tail'].map((t) => `source: ${t}`),
    );
    expect(variants.every((v) => v.additionalProperties === false)).toBe(true);
  });
});
