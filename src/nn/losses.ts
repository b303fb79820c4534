/** Losses and metrics. Each returns a scalar tensor (a lazy graph), so it can be differentiated and jitted. */
import { DTypeError, ShapeError } from '../errors';
import {
  argmax,
  asTensor,
  cast,
  equal,
  greater,
  logSoftmax,
  mean,
  mul,
  neg,
  softmaxCrossEntropyRows,
  square,
  sub,
  sum,
  where,
} from '../ops/api';
import { fmt, shapeEq } from '../shape';
import type { Tensor } from '../tensor';

/**
 * Mean softmax cross-entropy over the batch: -mean_i log softmax(logits_i)[labels_i].
 *
 * `logits` has shape [..., classes]. `labels` is either int32 class ids of shape logits.shape[:-1], or
 * float32 target probabilities of the same shape as `logits` (soft labels). Computed from logsumexp, so
 * it stays finite for logits as large as 1e4. An id outside [0, classes) makes that example's loss NaN
 * (so the mean is NaN): label values are not known while the graph is built, and a silent 0 would hide
 * the mistake.
 */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const x = asTensor(logits);
  const y = asTensor(labels);
  if (x.ndim < 1) throw new ShapeError(`softmaxCrossEntropy: logits must have rank >= 1, got shape []`);
  let perExample: Tensor;
  if (y.dtype === 'int32') {
    if (!shapeEq(y.shape, x.shape.slice(0, -1)))
      throw new ShapeError(
        `softmaxCrossEntropy: int32 labels must have shape ${fmt(x.shape.slice(0, -1))} (logits ${fmt(x.shape)} without the class axis), got ${fmt(y.shape)}`,
      );
    // One fused primitive: logsumexp minus the label's logit, a kernel pass over the logits.
    perExample = softmaxCrossEntropyRows(x, y);
  } else {
    if (shapeEq(y.shape, x.shape.slice(0, -1)))
      throw new DTypeError(
        `softmaxCrossEntropy: labels of shape ${fmt(y.shape)} are class ids and must be int32, got ${y.dtype}`,
      );
    if (!shapeEq(y.shape, x.shape))
      throw new ShapeError(
        `softmaxCrossEntropy: float32 labels are class probabilities and must have the logits' shape ${fmt(x.shape)}, got ${fmt(y.shape)}`,
      );
    // Classes with no target mass are left out rather than multiplied by 0, so a -Infinity logit
    // (a masked class) does not turn the loss into NaN.
    const logp = logSoftmax(cast(x, 'float32'), -1);
    perExample = neg(sum(where(greater(y, 0), mul(logp, y), 0), -1));
  }
  return x.ndim === 1 ? perExample : mean(perExample);
}

/** Mean squared error over all elements: mean((pred - target)^2). Shapes must match exactly. */
export function mse(pred: Tensor, target: Tensor): Tensor {
  const p = asTensor(pred);
  const t = asTensor(target);
  if (!shapeEq(p.shape, t.shape))
    throw new ShapeError(`mse: pred ${fmt(p.shape)} and target ${fmt(t.shape)} must have the same shape`);
  return mean(square(sub(cast(p, 'float32'), cast(t, 'float32'))));
}

/** Fraction of rows whose largest logit is at the label: a float32 scalar in [0, 1]. Not differentiable. */
export function accuracy(logits: Tensor, labels: Tensor): Tensor {
  const x = asTensor(logits);
  const y = asTensor(labels);
  if (y.dtype !== 'int32') throw new DTypeError(`accuracy: labels must be int32 class ids, got ${y.dtype}`);
  if (x.ndim < 1 || !shapeEq(y.shape, x.shape.slice(0, -1)))
    throw new ShapeError(
      `accuracy: labels ${fmt(y.shape)} must have the shape of logits ${fmt(x.shape)} without the class axis`,
    );
  return mean(cast(equal(argmax(x, -1), y), 'float32'));
}
