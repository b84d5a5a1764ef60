export * from './load.js';
export * from './units.js';
