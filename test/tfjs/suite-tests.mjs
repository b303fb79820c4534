import './suite-entry.mjs';
import '@tensorflow/tfjs-core/dist/tests.js';
