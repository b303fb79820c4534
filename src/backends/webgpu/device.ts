/// <reference types="@webgpu/types" />
/**
 * Acquiring a GPUDevice: from a `GPU` (navigator.gpu, or Node's `create([])` from npm 'webgpu'),
 * from navigator.gpu when nothing is given, or a GPUDevice the caller already has. The adapter
 * is requested plainly (forceFallbackAdapter returns null on lavapipe) and the limits kernels
 * size themselves by are raised to what it offers (lavapipe's default 128 MiB binding and 16 KiB
 * workgroup storage are below its maxima). Device loss is recorded (a flag and a reason) and
 * raced against every wait, so later work fails with a typed error instead of hanging.
 */

import { WebGPUDeviceLostError, WebGPUUnavailableError } from './errors';
import type { GpuLimits } from './kernel';

/** What the backend reports about its adapter. */
export interface AdapterReport {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** True on software adapters (lavapipe, SwiftShader, WARP): every one reports it. */
  readonly isFallbackAdapter: boolean;
}

/** Limits raised to the adapter's maxima when we create the device. */
const RAISED = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxStorageBuffersPerShaderStage',
] as const;

/** Loss of a device, observed once; `check` throws after it. */
export class DeviceHealth {
  lost = false;
  reason = '';
  /** Resolves when the device is lost (never otherwise): raced against waits so none hangs. */
  readonly whenLost: Promise<never>;

  constructor(device: GPUDevice) {
    this.whenLost = new Promise<never>((_, reject) => {
      device.lost.then((info) => {
        this.lost = true;
        this.reason = `${info.reason}${info.message ? `: ${info.message}` : ''}`;
        reject(this.error('the pending GPU work'));
      });
    });
    // Only observed through races; never an unhandled rejection on its own.
    this.whenLost.catch(() => {});
  }

  error(what: string): WebGPUDeviceLostError {
    return new WebGPUDeviceLostError(
      `webgpu: ${what} cannot run: the GPU device was lost (${this.reason || 'unknown reason'}); ` +
        'create a new backend (init() again) to continue',
    );
  }

  check(what: string): void {
    if (this.lost) throw this.error(what);
  }
}

export interface AcquiredDevice {
  readonly device: GPUDevice;
  readonly adapter: AdapterReport;
  readonly limits: GpuLimits;
  /** Whether we created the device (then dispose() destroys it). */
  readonly owned: boolean;
  readonly health: DeviceHealth;
  /**
   * The GPU object the device came from, where we asked it for one. dawn.node (npm 'webgpu')
   * tears its instance down when that object is collected, even while a device of it still has
   * work in flight (a crash in InstanceBase::ProcessEvents): the device's user must hold it.
   */
  readonly instance: GPU | null;
}

function isDevice(x: GPU | GPUDevice): x is GPUDevice {
  return typeof (x as GPUDevice).createBuffer === 'function';
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|warp|software/i;

function report(info: Partial<AdapterReport> | undefined, fallbackFlag?: boolean): AdapterReport {
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const description = info?.description ?? '';
  const isFallbackAdapter =
    info?.isFallbackAdapter ?? fallbackFlag ?? SOFTWARE.test(`${vendor} ${architecture} ${description}`);
  return { vendor, architecture, device, description, isFallbackAdapter };
}

function limitsOf(device: GPUDevice): GpuLimits {
  const l = device.limits;
  return {
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
  };
}

/**
 * A device from `gpu` (a GPU or a GPUDevice) or navigator.gpu. Throws WebGPUUnavailableError
 * naming what is missing when there is no implementation or no adapter.
 */
export async function acquireDevice(gpu?: GPU | GPUDevice): Promise<AcquiredDevice> {
  if (gpu && isDevice(gpu)) {
    const info = (gpu as GPUDevice & { adapterInfo?: Partial<AdapterReport> }).adapterInfo;
    return {
      device: gpu,
      adapter: report(info),
      limits: limitsOf(gpu),
      owned: false,
      health: new DeviceHealth(gpu),
      instance: null,
    };
  }
  const g = gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!g)
    throw new WebGPUUnavailableError(
      'webgpu: no WebGPU implementation here (navigator.gpu is undefined); in Node pass ' +
        "{ gpu: create([]) } from npm 'webgpu', in a browser enable WebGPU",
    );
  let adapter: GPUAdapter | null;
  try {
    adapter = await g.requestAdapter();
  } catch (e) {
    throw new WebGPUUnavailableError(`webgpu: requestAdapter failed: ${(e as Error).message}`);
  }
  if (!adapter)
    throw new WebGPUUnavailableError(
      'webgpu: no GPU adapter was found (requestAdapter() returned null). On Linux without a GPU, ' +
        "install Mesa's lavapipe Vulkan driver (mesa-vulkan-drivers, Mesa >= 25 for Dawn); in a " +
        'browser, check that WebGPU is enabled',
    );
  const requiredLimits: Record<string, number> = {};
  for (const k of RAISED) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const a = adapter as GPUAdapter & { info?: Partial<AdapterReport> };
  const info = report(a.info, (a as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits });
  } catch (e) {
    throw new WebGPUUnavailableError(`webgpu: requestDevice failed: ${(e as Error).message}`);
  }
  return {
    device,
    adapter: info,
    limits: limitsOf(device),
    owned: true,
    health: new DeviceHealth(device),
    instance: g,
  };
}
