// Entry of the bundle run-suite.mjs builds: registers adjoint with the tfjs-core instance the
// suite uses, selects the specs (suite-filter.mjs), then loads tfjs-core's own tests.
import * as tf from '@tensorflow/tfjs-core/dist/index.js';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { setTestEnvs, setupTestFilters } from '@tensorflow/tfjs-core/dist/jasmine_util.js';
import { registerTfjsBackend } from 'adjoint-dist/tfjs.js';
import { include } from './suite-filter.mjs';

const maxPending = process.env.ADJOINT_TFJS_MAX_PENDING
  ? Number(process.env.ADJOINT_TFJS_MAX_PENDING)
  : undefined;
await registerTfjsBackend(tf, { init: { threads: 1 }, priority: 1, maxPending });
setTestEnvs([{ name: 'adjoint', backendName: 'adjoint', isDataSync: true }]);
setupTestFilters([], include);
