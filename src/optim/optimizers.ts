/**
 * Optimizers in the optax style: pure functions over pytrees.
 *
 *   const opt = optim.adam({ lr: 1e-3 });
 *   let state = opt.init(params);
 *   [params, state] = opt.update(grads, state, params);
 *
 * `update` only builds graph nodes (it never reads a value), and the state is a pytree of tensors that
 * includes the step count, so a whole training step (loss, gradients, update) can be compiled with `jit`
 * and saved with `io.saveSafetensors`.
 */
import { tensor, zeros } from '../creation';
import { DTypeError, PytreeError, ValueError } from '../errors';
import {
  add,
  asTensor,
  cast,
  cos,
  div,
  maximum,
  minimum,
  mul,
  pow,
  reshape,
  sqrt,
  square,
  sub,
  sum,
  type TensorLike,
} from '../ops/api';
import { donate } from '../runtime/jit';
import { realizeSync } from '../runtime/realize';
import { fmt } from '../shape';
import { Tensor, traceState } from '../tensor';
import type { Pytree } from '../transforms/pytree';
import { flatten } from '../transforms/pytree';
import { alignLeaves, type Flat, flat, rebuild } from './tree';

/**
 * A learning-rate schedule: receives the number of updates applied before this one (a float32 scalar
 * tensor, 0 on the first update, as in optax) and returns the learning rate (a number or scalar tensor).
 * It must build its result with ops (it runs inside jit), e.g. `(t) => mul(0.1, exp(mul(t, -1e-3)))`.
 */
export type Schedule = (count: Tensor) => TensorLike;

/** Step count plus, per optimizer, trees of the parameters' shape. */
export type SgdState = { step: Tensor; momentum?: Pytree };
export type AdamState = { step: Tensor; mu: Pytree; nu: Pytree };

export interface Optimizer<S> {
  readonly name: string;
  /** The initial state for `params`: a step count of 0 (int32 scalar) and zero-filled moment trees. */
  init<P>(params: P): S;
  /**
   * One update: returns [new params, new state], both lazy graphs. `grads` must have the structure and
   * shapes of `params` (matched by key, so key order does not matter); the results have `params`' structure.
   *
   * Inside a jit-compiled function, the params and state passed in are donated (unless the optimizer was
   * made with `donate: false`): after each call of the compiled function their buffers are released, so
   * `({ params, state } = step(params, state, x, y))` runs in constant memory without dispose(). Reading
   * the old tensors after such a call is a DisposedError. Outside jit nothing is donated.
   */
  update<P>(grads: P, state: S, params: P): [P, S];
}

export interface SgdOptions {
  lr: number | Schedule;
  /** Heavy-ball momentum (torch convention: buf = momentum·buf + g; p -= lr·buf). Default 0 (none). */
  momentum?: number;
  /** Nesterov momentum: p -= lr·(g + momentum·buf). Needs momentum > 0. */
  nesterov?: boolean;
  /** L2 penalty added to the gradient: g += weightDecay·p. Default 0. */
  weightDecay?: number;
  /** Clip the gradients to this global L2 norm before anything else (see clipByGlobalNorm). */
  clipNorm?: number;
  /** Donate the replaced params and state inside jit (see {@link Optimizer.update}). Default true. */
  donate?: boolean;
}

export interface AdamOptions {
  lr: number | Schedule;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Added to sqrt(v̂) in the denominator. Default 1e-8. */
  eps?: number;
  /**
   * adam: L2 penalty added to the gradient (g += weightDecay·p, like torch.optim.Adam), default 0.
   * adamw: decoupled decay p -= lr·weightDecay·p (like torch.optim.AdamW), default 0.01.
   */
  weightDecay?: number;
  /** Clip the gradients to this global L2 norm before anything else (see clipByGlobalNorm). */
  clipNorm?: number;
  /** Donate the replaced params and state inside jit (see {@link Optimizer.update}). Default true. */
  donate?: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// validation

function num(
  where: string,
  name: string,
  v: unknown,
  lo: number,
  hi: number,
  loOpen = false,
  hiOpen = false,
) {
  const ok =
    typeof v === 'number' && Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && (hiOpen ? v < hi : v <= hi);
  if (!ok) {
    const range = `${loOpen ? '(' : '['}${lo}, ${hi === Number.POSITIVE_INFINITY ? '∞' : hi}${hiOpen ? ')' : ']'}`;
    throw new ValueError(`${where}: ${name} must be a number in ${range}, got ${String(v)}`);
  }
  return v as number;
}

function checkLr(where: string, lr: unknown): number | Schedule {
  if (typeof lr === 'function') return lr as Schedule;
  return num(where, 'lr', lr, 0, Number.POSITIVE_INFINITY);
}

function checkClip(where: string, clipNorm: unknown): number | undefined {
  if (clipNorm === undefined) return undefined;
  return num(where, 'clipNorm', clipNorm, 0, Number.POSITIVE_INFINITY, true);
}

function checkDonate(where: string, v: unknown): boolean {
  if (v === undefined) return true;
  if (typeof v !== 'boolean') throw new ValueError(`${where}: donate must be a boolean, got ${String(v)}`);
  return v;
}

function checkOptions(where: string, opts: unknown): Record<string, unknown> {
  if (opts === null || typeof opts !== 'object')
    throw new ValueError(`${where}: expected an options object such as { lr: 0.01 }, got ${String(opts)}`);
  return opts as Record<string, unknown>;
}

/** The learning rate for this update, given the step count before it (int32 scalar). */
function lrAt(where: string, lr: number | Schedule, count: Tensor): TensorLike {
  if (typeof lr === 'number') return lr;
  const v = lr(cast(count, 'float32'));
  const t = asTensor(v);
  if (t.size !== 1)
    throw new ValueError(`${where}: the lr schedule must return a scalar, got shape ${fmt(t.shape)}`);
  return cast(t.ndim === 0 ? t : reshape(t, []), 'float32');
}

function paramsOf(params: unknown, where: string): Flat {
  const ref = flat(params, `${where}: params`);
  ref.leaves.forEach((p, i) => {
    if (p.dtype !== 'float32')
      throw new DTypeError(`${where}: parameter ${i} is ${p.dtype}; optimizers update float32 tensors only`);
  });
  return ref;
}

function stepOf(state: unknown, where: string): Tensor {
  if (state === null || typeof state !== 'object' || !((state as { step?: unknown }).step instanceof Tensor))
    throw new PytreeError(`${where}: state must be the object that init returned (with a 'step' tensor)`);
  const step = (state as { step: Tensor }).step;
  if (step.ndim !== 0 || step.dtype !== 'int32')
    throw new PytreeError(
      `${where}: state.step must be an int32 scalar, got ${step.dtype}${fmt(step.shape)}`,
    );
  return step;
}

function gradsOf(grads: unknown, ref: Flat, where: string, clipNorm: number | undefined): Tensor[] {
  const g = alignLeaves(ref, grads, `${where}: grads`);
  g.forEach((t, i) => {
    if (t.dtype !== 'float32')
      throw new DTypeError(`${where}: gradient ${i} is ${t.dtype}, expected float32`);
  });
  return clipNorm === undefined ? g : clipLeaves(g, clipNorm);
}

const zerosLike = (ref: Flat): Pytree =>
  rebuild(
    ref,
    ref.leaves.map((p) => zeros(p.shape)),
  );

// ---------------------------------------------------------------------------------------------------------------
// clipping

/** sqrt of the sum of squares of every element of every leaf: a float32 scalar tensor. */
export function globalNorm(tree: unknown): Tensor {
  const { leaves } = flat(tree, 'optim.globalNorm');
  return normOf(leaves);
}

function normOf(leaves: readonly Tensor[]): Tensor {
  if (leaves.length === 0) return tensor(0);
  let total: Tensor | null = null;
  for (const t of leaves) {
    const s = sum(square(cast(t, 'float32')));
    total = total ? add(total, s) : s;
  }
  return sqrt(total!);
}

function clipLeaves(leaves: readonly Tensor[], maxNorm: number): Tensor[] {
  const norm = normOf(leaves);
  const scale = div(maxNorm, maximum(norm, maxNorm)); // 1 when norm <= maxNorm, else maxNorm / norm
  return leaves.map((t) => mul(t, scale));
}

/**
 * Scales the whole tree by maxNorm / max(globalNorm(tree), maxNorm): unchanged when its global L2 norm is
 * at most maxNorm, else rescaled to norm exactly maxNorm (optax.clip_by_global_norm). Returns a tree of
 * the same structure (lazy).
 */
export function clipByGlobalNorm<T>(tree: T, maxNorm: number): T {
  num('optim.clipByGlobalNorm', 'maxNorm', maxNorm, 0, Number.POSITIVE_INFINITY, true);
  const ref = flat(tree, 'optim.clipByGlobalNorm');
  return rebuild(ref, clipLeaves(ref.leaves, maxNorm));
}

// ---------------------------------------------------------------------------------------------------------------
// SGD

/**
 * Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay, in the torch.optim.SGD
 * convention (no dampening): buf ← momentum·buf + g;  p ← p − lr·buf  (or p − lr·(g + momentum·buf)).
 */
export function sgd(options: SgdOptions): Optimizer<SgdState> {
  const where = 'optim.sgd';
  const o = checkOptions(where, options);
  const lr = checkLr(where, o.lr);
  const momentum = num(where, 'momentum', o.momentum ?? 0, 0, 1, false, true);
  const nesterov = o.nesterov ?? false;
  if (typeof nesterov !== 'boolean') throw new ValueError(`${where}: nesterov must be a boolean`);
  if (nesterov && momentum === 0) throw new ValueError(`${where}: nesterov needs momentum > 0`);
  const weightDecay = num(where, 'weightDecay', o.weightDecay ?? 0, 0, Number.POSITIVE_INFINITY);
  const clipNorm = checkClip(where, o.clipNorm);
  const donates = checkDonate(where, o.donate);

  return {
    name: 'sgd',
    init<P>(params: P): SgdState {
      const ref = paramsOf(params, `${where}.init`);
      const step = tensor(0, { dtype: 'int32' });
      return momentum > 0 ? { step, momentum: zerosLike(ref) } : { step };
    },
    update<P>(grads: P, state: SgdState, params: P): [P, SgdState] {
      const w = `${where}.update`;
      const ref = paramsOf(params, w);
      const step = stepOf(state, w);
      let g = gradsOf(grads, ref, w, clipNorm);
      const p = ref.leaves;
      if (weightDecay > 0) g = g.map((gi, i) => add(gi, mul(p[i], weightDecay)));
      const rate = lrAt(w, lr, step);
      const newStep = add(step, 1);
      if (donates) donate([params, state]);
      if (momentum === 0) {
        return settle([
          rebuild(
            ref,
            p.map((pi, i) => sub(pi, mul(g[i], rate))),
          ),
          { step: newStep },
        ]);
      }
      const bufs = alignLeaves(ref, state.momentum, `${w}: state.momentum`);
      const newBufs = bufs.map((b, i) => add(mul(b, momentum), g[i]));
      const dir = nesterov ? newBufs.map((b, i) => add(g[i], mul(b, momentum))) : newBufs;
      return settle([
        rebuild(
          ref,
          p.map((pi, i) => sub(pi, mul(dir[i], rate))),
        ),
        { step: newStep, momentum: rebuild(ref, newBufs) },
      ]);
    },
  };
}

/**
 * Outside jit and other transforms an update is computed at once (with the loss and gradients it
 * came from, in one run): otherwise an eager loop would chain every step's update into one ever
 * longer lazy graph. Under a transform it stays lazy, so it can be compiled or differentiated.
 */
function settle<T>(result: T): T {
  if (traceState.depth === 0) realizeSync(flatten(result, 'update').leaves);
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// Adam / AdamW

function adamFamily(where: string, options: AdamOptions, decoupled: boolean): Optimizer<AdamState> {
  const o = checkOptions(where, options);
  const lr = checkLr(where, o.lr);
  const beta1 = num(where, 'beta1', o.beta1 ?? 0.9, 0, 1, false, true);
  const beta2 = num(where, 'beta2', o.beta2 ?? 0.999, 0, 1, false, true);
  const eps = num(where, 'eps', o.eps ?? 1e-8, 0, Number.POSITIVE_INFINITY);
  const weightDecay = num(
    where,
    'weightDecay',
    o.weightDecay ?? (decoupled ? 0.01 : 0),
    0,
    Number.POSITIVE_INFINITY,
  );
  const clipNorm = checkClip(where, o.clipNorm);
  const donates = checkDonate(where, o.donate);

  return {
    name: decoupled ? 'adamw' : 'adam',
    init<P>(params: P): AdamState {
      const ref = paramsOf(params, `${where}.init`);
      return { step: tensor(0, { dtype: 'int32' }), mu: zerosLike(ref), nu: zerosLike(ref) };
    },
    update<P>(grads: P, state: AdamState, params: P): [P, AdamState] {
      const w = `${where}.update`;
      const ref = paramsOf(params, w);
      const step = stepOf(state, w);
      let g = gradsOf(grads, ref, w, clipNorm);
      const p = ref.leaves;
      const mu = alignLeaves(ref, state.mu, `${w}: state.mu`);
      const nu = alignLeaves(ref, state.nu, `${w}: state.nu`);
      if (!decoupled && weightDecay > 0) g = g.map((gi, i) => add(gi, mul(p[i], weightDecay)));
      const rate = lrAt(w, lr, step);
      const newStep = add(step, 1);
      if (donates) donate([params, state]);
      const t = cast(newStep, 'float32');
      const bc1 = sub(1, pow(beta1, t)); // bias corrections 1 − β^t
      const bc2 = sub(1, pow(beta2, t));
      const newMu = mu.map((m, i) => add(mul(m, beta1), mul(g[i], 1 - beta1)));
      const newNu = nu.map((v, i) => add(mul(v, beta2), mul(square(g[i]), 1 - beta2)));
      const newP = p.map((pi, i) => {
        const u = div(div(newMu[i], bc1), add(sqrt(div(newNu[i], bc2)), eps));
        const d = decoupled && weightDecay > 0 ? add(u, mul(pi, weightDecay)) : u;
        return sub(pi, mul(d, rate));
      });
      return settle([
        rebuild(ref, newP),
        { step: newStep, mu: rebuild(ref, newMu), nu: rebuild(ref, newNu) },
      ]);
    },
  };
}

/**
 * Adam (Kingma & Ba) with bias correction, as torch.optim.Adam: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
 * p ← p − lr·m̂ / (sqrt(v̂) + eps) with m̂ = m / (1−β1^t), v̂ = v / (1−β2^t). weightDecay adds L2 to g.
 */
export function adam(options: AdamOptions): Optimizer<AdamState> {
  return adamFamily('optim.adam', options, false);
}

/** AdamW (Loshchilov & Hutter): Adam with decoupled weight decay p ← p − lr·(m̂/(sqrt(v̂)+eps) + wd·p). */
export function adamw(options: AdamOptions): Optimizer<AdamState> {
  return adamFamily('optim.adamw', options, true);
}

// ---------------------------------------------------------------------------------------------------------------
// schedules

/**
 * Cosine decay from `initLr` to `alpha·initLr` over `decaySteps` updates, then constant (optax's
 * cosine_decay_schedule). `offset` shifts the start, e.g. to the step count of a restored optimizer state
 * so that a fine-tuning run gets a fresh decay: lr(t) = initLr·((1−α)·½(1 + cos(π·min(t−offset, n)/n)) + α).
 */
export function cosineDecay(
  initLr: number,
  decaySteps: number,
  opts: { alpha?: number; offset?: number } = {},
): Schedule {
  const where = 'optim.cosineDecay';
  num(where, 'initLr', initLr, 0, Number.POSITIVE_INFINITY);
  if (!Number.isInteger(decaySteps) || decaySteps < 1)
    throw new ValueError(`${where}: decaySteps must be a positive integer, got ${String(decaySteps)}`);
  const alpha = num(where, 'alpha', opts.alpha ?? 0, 0, 1);
  const offset = num(where, 'offset', opts.offset ?? 0, 0, Number.POSITIVE_INFINITY);
  return (count: Tensor) => {
    const t = minimum(maximum(sub(count, offset), 0), decaySteps);
    const c = mul(add(cos(mul(t, Math.PI / decaySteps)), 1), 0.5);
    return mul(add(mul(c, 1 - alpha), alpha), initLr);
  };
}
