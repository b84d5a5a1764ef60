export * from './hash.js';
export * from './signing.js';
export * from './verify.js';
