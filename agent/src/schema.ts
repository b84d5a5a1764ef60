/**
 * The JSON Schema of agent.yaml, generated from the same zod schema the agent
 * validates with (`z.toJSONSchema`, input side: what a person writes, with
 * defaults). Committed as docs/schema/agent.schema.json for editors; a test fails
 * when the committed file is stale (`npm run schema -w agent` rewrites it).
 */
import { z } from 'zod';
import { agentConfigSchema } from './config.js';

export function agentJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(agentConfigSchema, {
    io: 'input',
    // Durations and sizes are parsed by transforms: their input shape is what editors need.
    unrepresentable: 'any',
    target: 'draft-2020-12',
  }) as Record<string, unknown>;
  // The host name default is the generating machine's: not something to write into a shared file.
  const agent = (schema.properties as Record<string, { properties: Record<string, Record<string, unknown>> }>)
    .agent!;
  delete agent.properties.name!.default;
  agent.properties.name!.description = "host.name on every event; the machine's host name when unset";
  const sources = (schema.properties as Record<string, { items: { oneOf: Record<string, unknown>[] } }>)
    .sources!;
  for (const variant of sources.items.oneOf) {
    const type = (variant.properties as Record<string, { const?: string }>).type?.const;
    if (type) variant.title = `source: ${type}`;
  }
  return {
    $schema: schema.$schema,
    $id: 'https://sealtrail.dev/schema/agent.schema.json',
    title: 'Sealtrail agent configuration (agent.yaml)',
    ...schema,
  };
}

export function agentJsonSchemaText(): string {
  return `${JSON.stringify(agentJsonSchema(), null, 2)}\n`;
}
