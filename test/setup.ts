/** Mocha root hooks: one backend for the whole run (wasm unless DIFFGUIDE_BACKEND says otherwise). */
import { initBackend } from '../lib/backend.js';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60000);
    await initBackend({ backend: (process.env.DIFFGUIDE_BACKEND as never) ?? 'wasm' });
  },
};
