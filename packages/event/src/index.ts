export * from './event.js';
export * from './schema.js';
