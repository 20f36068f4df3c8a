/**
 * lander pack's split (pure): the built-in nvidia rules against real file
 * names from PyInstaller CUDA builds, with the component voicebox's
 * scripts/package_cuda.py (jamiepine/voicebox, the version with
 * `matches_lib_prefix`) gives each; user globs and prefixes; the plan's
 * checks (empty component, links and names lander install would refuse).
 */
import { describe, expect, it } from 'vitest';
import { NVIDIA_RULE_SET, compileRules, globToRegExp, parseRuleSet, type RuleSet } from '../../src/pack/rules.ts';
import { planPack } from '../../src/pack/plan.ts';
import type { SourceEntry } from '../../src/pack/walk.ts';

const C = 'cuda-libs';
const S = 'server';

/** path → component, as package_cuda.py splits it. */
const TABLE: [string, string][] = [
  // Linux, torch 2.7+ wheels: CUDA from the nvidia-* wheels under _internal/nvidia/
  ['_internal/nvidia/__init__.py', C], // the whole namespace package moves
  ['_internal/nvidia/cublas/__init__.py', C],
  ['_internal/nvidia/cublas/include/cublas_api.h', C],
  ['_internal/nvidia/cublas/lib/libcublas.so.12', C],
  ['_internal/nvidia/cublas/lib/libcublasLt.so.12', C],
  ['_internal/nvidia/cuda_runtime/lib/libcudart.so.12', C],
  ['_internal/nvidia/cudnn/lib/libcudnn.so.9', C],
  ['_internal/nvidia/cudnn/lib/libcudnn_ops.so.9', C],
  ['_internal/nvidia/cudnn/lib/libcudnn_engines_runtime_compiled.so.9', C],
  ['_internal/nvidia/cusparselt/lib/libcusparseLt.so.0', C],
  ['_internal/nvidia/cuda_cupti/lib/libcupti.so.12', C], // not a listed prefix, but in the nvidia tree
  ['_internal/nvidia/nvtx/lib/libnvToolsExt.so.1', C],
  ['_internal/NVIDIA/readme.txt', C], // compared lower-case
  ['_internal/triton/backends/nvidia/bin/ptxas', C], // any folder named nvidia, as upstream
  ['_internal/triton/backends/nvidia/driver.py', C],
  // CUDA libraries by name, in any folder
  ['_internal/torch/lib/libcublas.so.12', C],
  ['_internal/torch/lib/libcudnn.so.9.1.0', C],
  ['_internal/torch/lib/libnccl.so.2', C],
  ['_internal/torch/lib/libcaffe2_nvrtc.so', C],
  ['_internal/torch/lib/libnvrtc-builtins.so.12.8', C],
  ['_internal/torch/lib/libnvJitLink.so.12', C],
  ['_internal/torch/lib/libcusparseLt.so', C], // starts with "cusparse"
  ['_internal/cupy_backends/cuda/libs/cublas.cpython-311-x86_64-linux-gnu.so', C],
  ['_internal/libcublas.so.12.debug', C], // ".so" anywhere in the name counts upstream
  // Windows, torch 2.10+: NVIDIA DLLs inside torch/lib
  ['_internal/torch/lib/cublas64_12.dll', C],
  ['_internal/torch/lib/cublasLt64_12.dll', C],
  ['_internal/torch/lib/cudart64_12.dll', C],
  ['_internal/torch/lib/cudnn64_9.dll', C],
  ['_internal/torch/lib/cudnn_ops64_9.dll', C],
  ['_internal/torch/lib/cudnn_engines_precompiled64_9.dll', C],
  ['_internal/torch/lib/cufft64_11.dll', C],
  ['_internal/torch/lib/cufftw64_11.dll', C],
  ['_internal/torch/lib/curand64_10.dll', C],
  ['_internal/torch/lib/cusolver64_11.dll', C],
  ['_internal/torch/lib/cusolverMg64_11.dll', C],
  ['_internal/torch/lib/cusparse64_12.dll', C],
  ['_internal/torch/lib/nvJitLink_120_0.dll', C],
  ['_internal/torch/lib/nvrtc64_120_0.dll', C],
  ['_internal/torch/lib/nvrtc-builtins64_128.dll', C],
  ['_internal/torch/lib/caffe2_nvrtc.dll', C],
  ['cublas64_12.dll', C], // PyInstaller 5: top level
  ['nvidia/cudnn/bin/cudnn64_9.dll', C],
  // the core: torch's own CUDA code, other GPU tools, Python stubs and metadata
  ['_internal/torch/lib/libtorch_cuda.so', S],
  ['_internal/torch/lib/libc10_cuda.so', S],
  ['_internal/torch/lib/torch_cuda.dll', S],
  ['_internal/torch/lib/c10_cuda.dll', S],
  ['_internal/torch/lib/cupti64_2025.1.0.dll', S],
  ['_internal/torch/lib/nvToolsExt64_1.dll', S],
  ['_internal/torch/lib/libcufile.so.0', S],
  ['_internal/torch/lib/zlibwapi.dll', S],
  ['_internal/torch/cuda/nccl.py', S],
  ['torch/cuda/nccl.py', S],
  ['_internal/torch/_inductor/codegen/cuda/cutlass_lib_extensions/cutlass_mock_imports/cuda/cudart.py', S],
  ['_internal/torch/backends/cudnn/__init__.py', S],
  ['_internal/torch/_C/_cudnn.pyi', S],
  ['_internal/cublas.py', S],
  ['_internal/nvidia_cublas_cu12-12.8.3.14.dist-info/METADATA', S],
  ['_internal/nvidia', S], // a file named nvidia is not the tree
  ['_internal/libpython3.11.so.1.0', S],
  ['_internal/base_library.zip', S],
  ['voicebox-server-cuda', S],
  ['voicebox-server-cuda.exe', S],
];

describe('built-in nvidia rules', () => {
  const classify = compileRules(NVIDIA_RULE_SET);
  it.each(TABLE)('%s → %s', (p, want) => expect(classify(p)).toBe(want));
});

describe('globs', () => {
  it.each([
    ['**/libcudnn*.so*', '_internal/torch/lib/libcudnn.so.9', true],
    ['**/libcudnn*.so*', 'libcudnn.so', true],
    ['libcudnn*.so*', '_internal/deep/libcudnn_ops.so.9', true], // no slash: the name at any depth
    ['_internal/*.so', '_internal/a/b.so', false], // * stays within a folder
    ['_internal/**/b.so', '_internal/b.so', true],
    ['_internal/**', '_internal/x/y/z', true],
    ['_internal/models/{tts,asr}/**', '_internal/models/asr/w.bin', true],
    ['_internal/models/{tts,asr}/**', '_internal/models/llm/w.bin', false],
    ['lib?.so', 'a/libx.so', true],
    ['[!a]*.txt', 'b.txt', true],
    ['[!a]*.txt', 'a.txt', false],
    ['file.(1).txt', 'file.(1).txt', true],
  ] as const)('%s on %s → %s', (g, p, want) => expect(globToRegExp(g).test(p)).toBe(want));

  it('ignoreCase', () => {
    expect(globToRegExp('**/LIBCUDNN*', true).test('x/libcudnn.so')).toBe(true);
    expect(globToRegExp('**/LIBCUDNN*').test('x/libcudnn.so')).toBe(false);
  });
});

describe('rules files', () => {
  const text = JSON.stringify({
    default: 'server',
    components: { 'cuda-libs': { asset: 'cuda-libs-{version}.tar.gz', version: 'cu128-v1' }, models: {} },
    rules: [
      { component: 'server', glob: '_internal/torch/cuda/**' },
      { component: 'cuda-libs', builtin: 'nvidia' },
      { component: 'models', prefix: '_internal/models/' },
      { component: 'cuda-libs', glob: 'libcupti*.so*', ignoreCase: true },
    ],
  });

  it('the first matching rule wins, the rest goes to the default', () => {
    const rs = parseRuleSet(text, 'rules.json');
    const c = compileRules(rs);
    expect(c('_internal/torch/cuda/libcudart.so.12')).toBe('server'); // an earlier rule keeps it
    expect(c('_internal/torch/lib/libcudart.so.12')).toBe('cuda-libs');
    expect(c('_internal/models/tts/w.bin')).toBe('models');
    expect(c('_internal/torch/lib/libCUPTI.so.12')).toBe('cuda-libs');
    expect(c('_internal/x.py')).toBe('server');
    expect(rs.components.models).toEqual({ asset: 'models-{version}.tar.gz' });
  });

  it('names the bad field', () => {
    const bad = (v: unknown) => () => parseRuleSet(JSON.stringify(v), 'r.json');
    expect(bad({ default: 'server', rules: [] })).toThrow(/rules: Expected at least one rule/);
    expect(bad({ default: 'server', rules: [{ component: 'x', glob: 'a', prefix: 'b' }] })).toThrow(/rules\.0: Expected \{"component"/);
    expect(bad({ default: 'a b', rules: [{ component: 'x', prefix: 'b' }] })).toThrow(/default: Expected a component name/);
    expect(bad({ default: 's', components: { s: { asset: '../x.tar.gz' } }, rules: [{ component: 'x', prefix: 'b' }] })).toThrow(/components\.s\.asset/);
    expect(bad({ default: 's', rules: [{ component: 'x', glob: '{a,b' }] })).toThrow(/never closed/);
    expect(() => parseRuleSet('{', 'r.json')).toThrow(/invalid JSON/);
  });
});

const f = (p: string, size = 1): SourceEntry => ({ path: p, type: 'file', size, mode: 0o644 });
const d = (p: string): SourceEntry => ({ path: p, type: 'directory', size: 0, mode: 0o755 });
const l = (p: string, linkname: string): SourceEntry => ({ path: p, type: 'symlink', size: 0, mode: 0o777, linkname });

describe('planPack', () => {
  it('gives each component the folders above its entries, an empty folder by its own path', () => {
    const plans = planPack([d('_internal'), d('_internal/nvidia'), f('_internal/nvidia/libcudart.so.12', 5), l('_internal/nvidia/libcudart.so', 'libcudart.so.12'), d('_internal/nvidia/empty'), f('_internal/x.py', 3), d('_internal/torch'), d('_internal/torch/empty')], NVIDIA_RULE_SET);
    const byName = Object.fromEntries(plans.map((p) => [p.name, p]));
    expect(byName.server!.entries.map((e) => e.path)).toEqual(['_internal', '_internal/x.py', '_internal/torch', '_internal/torch/empty']);
    expect(byName['cuda-libs']!.entries.map((e) => e.path)).toEqual(['_internal', '_internal/nvidia', '_internal/nvidia/libcudart.so.12', '_internal/nvidia/libcudart.so', '_internal/nvidia/empty']);
    expect(byName['cuda-libs']!.bytes).toBe(5);
  });

  it('refuses an empty component', () => {
    expect(() => planPack([f('a.py')], NVIDIA_RULE_SET)).toThrow(expect.objectContaining({ code: 'ERR_PACK_EMPTY', message: expect.stringMatching(/component cuda-libs would be empty/) }));
  });

  it('refuses a link that leaves the folder, and an absolute one', () => {
    const base = [f('_internal/nvidia/libcudart.so.12')];
    expect(() => planPack([...base, l('_internal/evil', '../../etc/passwd')], NVIDIA_RULE_SET)).toThrow(expect.objectContaining({ code: 'ERR_PACK_LINK', message: expect.stringMatching(/"_internal\/evil" is a symlink that links to "..\/..\/etc\/passwd", which leaves the folder/) }));
    expect(() => planPack([...base, l('abs', '/usr/lib')], NVIDIA_RULE_SET)).toThrow(expect.objectContaining({ code: 'ERR_PACK_LINK' }));
  });

  it('refuses a link that stays inside only through a link packed in another component', () => {
    // In the folder: _internal/nvidia/deep -> cudnn/lib, so four ".." from it end at the root.
    // lander install checks the core's archive alone, where "deep" is a plain folder: one ".." too many.
    const entries = [d('_internal'), d('_internal/nvidia'), d('_internal/nvidia/cudnn'), d('_internal/nvidia/cudnn/lib'), f('_internal/nvidia/cudnn/lib/libcudnn.so.9'), l('_internal/nvidia/deep', 'cudnn/lib'), l('_internal/up', 'nvidia/deep/../../../..')];
    expect(() => planPack(entries, NVIDIA_RULE_SET)).toThrow(expect.objectContaining({ code: 'ERR_PACK_LINK', message: expect.stringMatching(/"_internal\/up" \(server\) is a symlink that, checked within its own archive as lander install does, links to .* another component/) }));
  });

  it('accepts a link from one component into another that resolves without crossing a link', () => {
    const plans = planPack([f('_internal/nvidia/lib/libcudart.so.12'), l('_internal/cudart', 'nvidia/lib/libcudart.so.12')], NVIDIA_RULE_SET);
    expect(plans.find((p) => p.name === 'server')!.entries.map((e) => e.path)).toEqual(['_internal/cudart']);
  });

  it('refuses names that collide on a case-insensitive file system', () => {
    expect(() => planPack([f('_internal/nvidia/libcudart.so.12'), f('_internal/Readme'), f('_internal/README')], NVIDIA_RULE_SET)).toThrow(expect.objectContaining({ code: 'ERR_PACK_PATH', message: expect.stringMatching(/collides with "_internal\/Readme"/) }));
  });

  it('uses a custom default component', () => {
    const rs: RuleSet = { default: 'app', components: {}, rules: [{ component: 'big', prefix: 'weights/' }] };
    const plans = planPack([f('weights/a.bin'), f('main.py')], rs);
    expect(plans.map((p) => [p.name, p.entries.map((e) => e.path)])).toEqual([['app', ['main.py']], ['big', ['weights/a.bin']]]);
  });
});
