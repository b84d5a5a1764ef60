export { Agent } from './agent.js';
export { type AgentConfig, agentConfigSchema, loadAgentConfig, parseAgentConfig } from './config.js';
export { loadOrCreateIdentity } from './identity/identity.js';
export { Checkpointer, readAnchor } from './journal/checkpoint.js';
export { chainStartEvent } from './journal/events.js';
export { Journal } from './journal/journal.js';
export { openWithRecovery } from './journal/recovery.js';
export { journalPaths, verifyJournal } from './journal/verify.js';
