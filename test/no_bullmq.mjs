// Node module hooks for test/queue.test.ts: resolving bullmq or ioredis fails, as where they are not
// installed, so a run that needs neither can prove it. Use: node --import ./test/no_bullmq.mjs ...
import { register } from 'node:module';

register(
  'data:text/javascript,' +
    encodeURIComponent(
      "export async function resolve(s, c, next) { if (s === 'bullmq' || s === 'ioredis' || s.startsWith('bullmq/')) throw new Error('no ' + s + ' here (test/no_bullmq.mjs)'); return next(s, c); }",
    ),
);
