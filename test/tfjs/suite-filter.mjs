/**
 * Which of tfjs-core's specs run against the adjoint backend: all of them except those that
 * need a kernel the backend does not register (TF.js would give "Kernel 'X' not registered
 * for backend 'adjoint'") or a feature it does not have, each with its reason. Everything not
 * listed here runs, including the engine, gradient, optimizer, io and util suites.
 */

/** Whole suites (the describe name before " adjoint {}") and the kernel or feature they need. */
export const excludedSuites = {
  '1D FFT': 'complex64 (Complex, FFT kernels)',
  '1D IFFT': 'complex64 (Complex, IFFT kernels)',
  '1D RFFT': 'complex64 (Complex, RFFT kernels)',
  '1D IRFFT': 'complex64 (Complex, IRFFT kernels)',
  '2D FFT': 'complex64 (Complex, FFT kernels)',
  '2D IFFT': 'complex64 (Complex, IFFT kernels)',
  '2D RFFT': 'complex64 (Complex, RFFT kernels)',
  '2D IRFFT': 'complex64 (Complex, IRFFT kernels)',
  '3D IRFFT': 'complex64 (Complex, IRFFT kernels)',
  stft: 'complex64 (Complex, RFFT kernels)',
  complex64: 'complex64 (Complex, Real, Imag kernels)',
  RGBToGrayscale: 'Einsum kernel',
  einsum: 'Einsum kernel',
  acos: 'Acos kernel (adjoint has no inverse trigonometric ops)',
  asin: 'Asin kernel (adjoint has no inverse trigonometric ops)',
  atan: 'Atan kernel (adjoint has no inverse trigonometric ops)',
  atan2: 'Atan2 kernel (adjoint has no inverse trigonometric ops)',
  avgPool3d: 'AvgPool3D kernel (adjoint pools in 2-D)',
  avgPool3dBackprop: 'AvgPool3D kernel (adjoint pools in 2-D)',
  maxPool3d: 'MaxPool3D kernel (adjoint pools in 2-D)',
  maxPool3dBackprop: 'MaxPool3D kernel (adjoint pools in 2-D)',
  conv3d: 'Conv3D kernel (adjoint convolves in 1-D and 2-D)',
  conv3dTranspose: 'Conv3DBackpropInputV2 kernel (adjoint convolves in 1-D and 2-D)',
  maxPoolWithArgmax: 'MaxPoolWithArgmax kernel',
  dilation2d: 'Dilation2D kernel',
  bitwiseAnd: 'BitwiseAnd kernel',
  cropAndResize: 'CropAndResize kernel',
  resizeBilinear: 'ResizeBilinear kernel',
  'resizeBilinear gradients': 'ResizeBilinear kernel',
  resizeNearestNeighbor: 'ResizeNearestNeighbor kernel',
  'resizeNearestNeighbor gradients': 'ResizeNearestNeighbor kernel',
  flipLeftRight: 'FlipLeftRight kernel',
  'image.transform': 'Transform kernel',
  nonMaxSuppression: 'NonMaxSuppressionV3/V4/V5 kernels',
  'localResponseNormalization with Tensor3D': 'LRN kernel',
  'localResponseNormalization with Tensor4D': 'LRN kernel',
  cumprod: 'Cumprod kernel',
  topk: 'TopK kernel',
  unique: 'Unique kernel',
  multinomial: 'Multinomial kernel',
  tensorScatterUpdate: 'TensorScatterUpdate kernel',
  searchSorted: 'SearchSorted kernel',
  lowerBound: 'SearchSorted kernel',
  upperBound: 'SearchSorted kernel',
  'raggedGather ': 'RaggedGather kernel',
  'raggedRange ': 'RaggedRange kernel',
  'raggedTensorToTensor ': 'RaggedTensorToTensor kernel',
  sparseFillEmptyRows: 'SparseFillEmptyRows kernel',
  sparseReshape: 'SparseReshape kernel',
  sparseSegmentMean: 'SparseSegmentMean kernel',
  sparseSegmentSum: 'SparseSegmentSum kernel',
  stringNGrams: 'string dtype (StringNGrams kernel)',
  stringSplit: 'string dtype (StringSplit kernel)',
  stringToHashBucketFast: 'string dtype (StringToHashBucketFast kernel)',
  staticRegexReplace: 'string dtype (StaticRegexReplace kernel)',
  'tensor dataSync': 'string dtype',
  squeeze: 'string dtype (the suite of that name squeezes string tensors)',
  'util.toNestedArray for a complex tensor': 'complex64 dtype (Complex kernel)',
};

/** Specs excluded by a substring of the spec's own description (after the suite and env). */
export const excludedSpecs = [
  ['string', 'string dtype: the backend stores float32, int32 and bool'],
  ['String', 'string dtype: the backend stores float32, int32 and bool'],
  ['complex', 'complex64 dtype (Complex kernel)'],
  ['Complex', 'complex64 dtype (Complex kernel)'],
  ['Mixed dtype', 'string and complex64 dtypes'],
  ['NCHW', 'NCHW data format: the convolution kernels take NHWC'],
  [
    'dimRoundingMode=round',
    'dimRoundingMode round/ceil: output sizes the explicit-padding geometry does not give',
  ],
  [
    'dimRoundingMode=ceil',
    'dimRoundingMode round/ceil: output sizes the explicit-padding geometry does not give',
  ],
  ['f=[1,1] s=2 p=1', 'padding as large as the window: adjoint pooling rejects it (ValueError)'],
  ['batchDims', 'GatherV2 with batchDims != 0'],
  ['batch dims', 'GatherV2 with batchDims != 0'],
  [
    'throws when index is out of bound',
    'lazy kernels: an out-of-range gather index is a ValueError when the value is computed, not when the kernel is called',
  ],
  [
    'input=8x8x8,output=4x4x8',
    'a backprop-input geometry whose dy does not match the stated input (the CPU backend accepts it)',
  ],
];

/** Specs excluded by their full name prefix: a kernel the spec reaches only through another op. */
export const excludedPrefixes = [
  ['prod adjoint {} gradients', "Cumprod kernel (TF.js's gradient of prod)"],
  ['add adjoint {} upcasts when dtypes dont match', 'complex64 dtype (Complex kernel)'],
  ['sub adjoint {} upcasts when dtypes dont match', 'complex64 dtype (Complex kernel)'],
  [
    'tan adjoint {} numbers exceed float32 precision',
    'tan of arguments past float32 precision: TF.js computes in float64 on the CPU backend; adjoint in float32',
  ],
];

export function include(fullName) {
  const env = fullName.indexOf(' adjoint {}');
  const suite = env >= 0 ? fullName.slice(0, env) : fullName;
  if (Object.hasOwn(excludedSuites, suite)) return false;
  const own = env >= 0 ? fullName.slice(env + ' adjoint {}'.length) : fullName;
  for (const [s] of excludedSpecs) if (own.includes(s)) return false;
  for (const [p] of excludedPrefixes) if (fullName.startsWith(p)) return false;
  return true;
}
