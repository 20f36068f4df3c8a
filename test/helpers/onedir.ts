/**
 * A PyInstaller one-folder CUDA build as voicebox ships it (Linux, torch
 * 2.7+ / PyInstaller 6 layout), small enough for tests: the launcher,
 * `_internal/` with torch's own libraries, CUDA libraries both in
 * `torch/lib` and in the nvidia-* wheels' `nvidia/` tree, versioned `.so`
 * names with `libx.so -> libx.so.12` links, Python stubs named like CUDA
 * libraries, a read-only zip, an empty folder, a hard link, a link from the
 * core into the CUDA tree, and names that need pax headers.
 */
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface OnedirOptions {
  /** Bytes of each large library (half random, half zeros: about as compressible as real ones). @default 64 KiB */
  libBytes?: number;
  /** Leave the CUDA libraries out (a CPU build). */
  withoutCuda?: boolean;
}

/** Paths the built-in nvidia rules must put in cuda-libs; everything else is core. */
export const CUDA_PATHS = [
  '_internal/nvidia/__init__.py',
  '_internal/nvidia/cublas/__init__.py',
  '_internal/nvidia/cublas/lib/libcublas.so.12',
  '_internal/nvidia/cublas/lib/libcublasLt.so.12',
  '_internal/nvidia/cuda_runtime/lib/libcudart.so',
  '_internal/nvidia/cuda_runtime/lib/libcudart.so.12',
  '_internal/nvidia/cudnn/lib/libcudnn.so.9',
  '_internal/nvidia/cudnn/lib/libcudnn_cnn.so.9',
  '_internal/nvidia/cudnn/lib/libcudnn_ops.so',
  '_internal/nvidia/cudnn/lib/libcudnn_ops.so.9',
  '_internal/nvidia/nccl/lib/libnccl.so.2',
  '_internal/nvidia/nvjitlink/lib/libnvJitLink.so.12',
  '_internal/torch/lib/libcaffe2_nvrtc.so',
  '_internal/torch/lib/libcublas.so.12',
  '_internal/torch/lib/libnvrtc-builtins.so.12.8',
];

export async function makeCudaOnedir(dir: string, opts: OnedirOptions = {}): Promise<void> {
  const n = opts.libBytes ?? 64 * 1024;
  const lib = () => {
    const half = randomBytes(Math.ceil(n / 2));
    return Buffer.concat([half, Buffer.alloc(n - half.length)]);
  };
  const put = async (rel: string, data: Buffer | string, mode = 0o644) => {
    const abs = path.join(dir, rel);
    await mkdir(path.dirname(abs), { recursive: true });
    await writeFile(abs, data);
    await chmod(abs, mode);
  };
  await put('voicebox-server-cuda', '#!/bin/sh\nexec "$(dirname "$0")/_internal/python" -m voicebox "$@"\n', 0o755);
  await put('_internal/base_library.zip', Buffer.alloc(8192, 7), 0o444);
  await put('_internal/libpython3.11.so.1.0', lib(), 0o755);
  await put('_internal/libgomp-a34b3233.so.1', lib(), 0o755);
  await put('_internal/cublas.py', '# a stub named like a CUDA library; stays in the core\n');
  await put('_internal/nvidia_cublas_cu12-12.8.3.14.dist-info/METADATA', 'Name: nvidia-cublas-cu12\n');
  await put('_internal/torch/__init__.py', '# torch\n');
  await put('_internal/torch/version.py', "__version__ = '2.7.0+cu128'\n");
  await put('_internal/torch/cuda/nccl.py', '# torch.cuda.nccl\n');
  await put('_internal/torch/backends/cudnn/__init__.py', '# torch.backends.cudnn\n');
  await put('_internal/torch/_inductor/codegen/cuda/cutlass_lib_extensions/cutlass_mock_imports/cuda/cudart.py', '# mock\n');
  await put('_internal/torch/_C/_cudnn.pyi', '# stub\n');
  await put('_internal/torch/lib/libtorch_cuda.so', lib(), 0o755);
  await put('_internal/torch/lib/libtorch_cpu.so', lib(), 0o755);
  await put('_internal/torch/lib/libc10_cuda.so', lib(), 0o755);
  // PyInstaller copies some libraries twice; here as a hard link, which pack stores as a plain file.
  await link(path.join(dir, '_internal/libgomp-a34b3233.so.1'), path.join(dir, '_internal/torch/lib/libgomp.so.1'));
  await mkdir(path.join(dir, '_internal/torch/share/cmake/empty'), { recursive: true });
  // Over 100 bytes and non-ASCII: both need pax headers.
  await put(`_internal/voicebox/${'very_long_module_name_'.repeat(6)}/${'x'.repeat(60)}.py`, '# deep\n');
  await put('_internal/voicebox/données/modèle.json', '{"ok": true}\n');
  if (opts.withoutCuda) return;
  await put('_internal/torch/lib/libcublas.so.12', lib(), 0o755);
  await put('_internal/torch/lib/libcaffe2_nvrtc.so', lib(), 0o755);
  await put('_internal/torch/lib/libnvrtc-builtins.so.12.8', lib(), 0o755);
  await put('_internal/nvidia/__init__.py', '');
  await put('_internal/nvidia/cublas/__init__.py', '');
  await put('_internal/nvidia/cublas/lib/libcublas.so.12', lib(), 0o755);
  await put('_internal/nvidia/cublas/lib/libcublasLt.so.12', lib(), 0o755);
  await put('_internal/nvidia/cuda_runtime/lib/libcudart.so.12', lib(), 0o755);
  await symlink('libcudart.so.12', path.join(dir, '_internal/nvidia/cuda_runtime/lib/libcudart.so'));
  await put('_internal/nvidia/cudnn/lib/libcudnn.so.9', lib(), 0o755);
  await put('_internal/nvidia/cudnn/lib/libcudnn_cnn.so.9', lib(), 0o755);
  await put('_internal/nvidia/cudnn/lib/libcudnn_ops.so.9', lib(), 0o755);
  await symlink('libcudnn_ops.so.9', path.join(dir, '_internal/nvidia/cudnn/lib/libcudnn_ops.so'));
  await put('_internal/nvidia/nccl/lib/libnccl.so.2', lib(), 0o755);
  await put('_internal/nvidia/nvjitlink/lib/libnvJitLink.so.12', lib(), 0o755);
  // A link in the core to a folder in cuda-libs: fine once both are installed.
  await symlink('nvidia/cuda_runtime/lib', path.join(dir, '_internal/cuda_runtime_lib'));
}
