// Registers every primitive. Import this module (not the defs) to get a complete registry.
import './defs/sources';
import './defs/elementwise';
import './defs/reduce';
import './defs/shape';
import './defs/linalg';
import './defs/norm';
import './defs/conv';
import './defs/random';
import './custom';

export * from './api';
export { allOps, apply, getOp, type OpDef } from './registry';
