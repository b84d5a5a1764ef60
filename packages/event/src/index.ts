export * from './event.js';
export * from './fast.js';
export * from './scan.js';
export * from './schema.js';
