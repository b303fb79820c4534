/**
 * Precision of the reference interpreter. 'float32' rounds every stored result like the real
 * backends do; 'float64' keeps full precision and is what the finite-difference tests use.
 */
export const referenceConfig = { precision: 'float32' as 'float32' | 'float64' };
