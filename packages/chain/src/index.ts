export * from './hash.js';
export * from './verify.js';
