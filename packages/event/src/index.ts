export * from './event.js';
export * from './fast.js';
export * from './schema.js';
