#!/usr/bin/env node
// Writes docs/schema/agent.schema.json from the built agent (npm run build first).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { agentJsonSchemaText } from '../dist/schema.js';

const out = fileURLToPath(new URL('../../docs/schema/agent.schema.json', import.meta.url));
writeFileSync(out, agentJsonSchemaText());
console.log(`wrote ${out}`);
