export { Agent } from './agent.js';
export { type AgentConfig, agentConfigSchema, loadAgentConfig, parseAgentConfig } from './config.js';
export { Journal } from './journal/journal.js';
export { verifyJournal } from './journal/verify.js';
