/** The showcase of all five methods (`diffguide demo`) and its HTML page. */
export * from './showcase.js';
export * from './html.js';
