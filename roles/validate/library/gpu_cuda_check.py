#!/usr/bin/python
# Copyright: provision contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Ansible module ``gpu_cuda_check``: prove the driver computes, not only that nvidia-smi runs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_cuda_check
short_description: Run a real CUDA computation on every GPU and read NVML's versions
description:
  - Through the CUDA driver API (libcuda, with ctypes; no toolkit needed) initialises CUDA,
    counts the devices and, on each, allocates device memory, JIT-compiles a small PTX
    vector-add kernel, launches it, copies the result back and checks every element.
  - Through NVML (libnvidia-ml) reads the kernel driver version and the NVML library version,
    so the caller can assert that the loaded module and the user-space library agree.
  - When nvcc is present (PATH, /usr/local/cuda/bin, or O(nvcc)) also compiles a CUDA C++
    vector-add with it and runs it on every GPU, which checks that the toolkit and the driver
    work together.
  - Never changes the host; it reports, the caller asserts.
version_added: "0.1.0"
author:
  - provision contributors
options:
  elements:
    description: Vector length of the test (floats).
    type: int
    default: 1048576
  nvcc:
    description: C(auto) compiles with nvcc when found, C(never) skips it, or a path to nvcc.
    type: str
    default: auto
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Run a CUDA computation on every GPU
  gpu_cuda_check:
  register: cuda_check
"""

RETURN = r"""
cuda:
  description: CUDA driver API results (ok, driver_api_version, device_count, devices, error).
  returned: always
  type: dict
nvml:
  description: NVML results (ok, driver_version, nvml_version, library_version, device_count, error).
  returned: always
  type: dict
nvcc:
  description: The nvcc vector-add (ran, ok, path, release, output, error).
  returned: always
  type: dict
"""

import ctypes
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from array import array
from typing import Any

# c[i] = a[i] + b[i]; PTX ISA 7.0 / sm_50 so that every driver from CUDA 11 on can JIT it.
PTX_VADD = rb"""
.version 7.0
.target sm_50
.address_size 64

.visible .entry vadd(
    .param .u64 param_a,
    .param .u64 param_b,
    .param .u64 param_c,
    .param .u32 param_n
)
{
    .reg .pred  %p<2>;
    .reg .f32   %f<4>;
    .reg .b32   %r<6>;
    .reg .b64   %rd<11>;

    ld.param.u64    %rd1, [param_a];
    ld.param.u64    %rd2, [param_b];
    ld.param.u64    %rd3, [param_c];
    ld.param.u32    %r2, [param_n];
    mov.u32         %r3, %ctaid.x;
    mov.u32         %r4, %ntid.x;
    mov.u32         %r5, %tid.x;
    mad.lo.s32      %r1, %r3, %r4, %r5;
    setp.ge.u32     %p1, %r1, %r2;
    @%p1 bra        DONE;
    cvta.to.global.u64  %rd4, %rd1;
    cvta.to.global.u64  %rd5, %rd2;
    cvta.to.global.u64  %rd6, %rd3;
    mul.wide.u32    %rd7, %r1, 4;
    add.s64         %rd8, %rd4, %rd7;
    add.s64         %rd9, %rd5, %rd7;
    add.s64         %rd10, %rd6, %rd7;
    ld.global.f32   %f1, [%rd8];
    ld.global.f32   %f2, [%rd9];
    add.f32         %f3, %f1, %f2;
    st.global.f32   [%rd10], %f3;
DONE:
    ret;
}
"""

VADD_CU = r"""
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

__global__ void vadd(const float *a, const float *b, float *c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : (1 << 20);
  int devices = 0;
  cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess) { printf("FAIL cudaGetDeviceCount: %s\n", cudaGetErrorString(e)); return 1; }
  size_t bytes = (size_t)n * sizeof(float);
  float *a = (float *)malloc(bytes), *b = (float *)malloc(bytes), *c = (float *)malloc(bytes);
  for (int i = 0; i < n; i++) { a[i] = (float)i; b[i] = 2.0f * (float)i; }
  for (int d = 0; d < devices; d++) {
    float *da, *db, *dc;
    cudaSetDevice(d);
    if ((e = cudaMalloc(&da, bytes)) != cudaSuccess || (e = cudaMalloc(&db, bytes)) != cudaSuccess ||
        (e = cudaMalloc(&dc, bytes)) != cudaSuccess) {
      printf("FAIL device %d cudaMalloc: %s\n", d, cudaGetErrorString(e)); return 1;
    }
    cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice);
    cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice);
    vadd<<<(n + 255) / 256, 256>>>(da, db, dc, n);
    if ((e = cudaDeviceSynchronize()) != cudaSuccess) {
      printf("FAIL device %d kernel: %s\n", d, cudaGetErrorString(e)); return 1;
    }
    cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost);
    for (int i = 0; i < n; i++) {
      if (c[i] != a[i] + b[i]) { printf("FAIL device %d element %d: %f\n", d, i, c[i]); return 1; }
    }
    cudaFree(da); cudaFree(db); cudaFree(dc);
    printf("PASS device %d %d elements\n", d, n);
  }
  printf("DEVICES %d\n", devices);
  return 0;
}
"""

CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
CU_JIT_ERROR_LOG_BUFFER = 5
CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6


class CudaError(RuntimeError):
    pass


def _load(*names: str) -> ctypes.CDLL:
    last: OSError | None = None
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            last = exc
    raise OSError(str(last))


def _fn(lib: ctypes.CDLL, *names: str):
    for name in names:
        f = getattr(lib, name, None)
        if f is not None:
            return f
    raise CudaError(f"{names[0]} is missing from libcuda")


def cuda_check(elements: int) -> dict[str, Any]:
    """CUDA driver API: init, count, and a PTX vector-add on every device."""
    result: dict[str, Any] = {"ok": False, "driver_api_version": None, "device_count": None,
                              "devices": [], "error": None}
    try:
        cuda = _load("libcuda.so.1", "libcuda.so")
    except OSError as exc:
        result["error"] = f"libcuda cannot be loaded: {exc}"
        return result

    def check(rc: int, what: str) -> None:
        if rc != 0:
            name = ctypes.c_char_p()
            try:
                cuda.cuGetErrorName(rc, ctypes.byref(name))
                label = name.value.decode() if name.value else str(rc)
            except Exception:  # pragma: no cover - very old drivers
                label = str(rc)
            raise CudaError(f"{what} failed: {label} ({rc})")

    cu_ptr = ctypes.c_uint64
    mem_alloc = _fn(cuda, "cuMemAlloc_v2", "cuMemAlloc")
    mem_alloc.argtypes = [ctypes.POINTER(cu_ptr), ctypes.c_size_t]
    mem_free = _fn(cuda, "cuMemFree_v2", "cuMemFree")
    mem_free.argtypes = [cu_ptr]
    htod = _fn(cuda, "cuMemcpyHtoD_v2", "cuMemcpyHtoD")
    htod.argtypes = [cu_ptr, ctypes.c_void_p, ctypes.c_size_t]
    dtoh = _fn(cuda, "cuMemcpyDtoH_v2", "cuMemcpyDtoH")
    dtoh.argtypes = [ctypes.c_void_p, cu_ptr, ctypes.c_size_t]
    total_mem = _fn(cuda, "cuDeviceTotalMem_v2", "cuDeviceTotalMem")
    total_mem.argtypes = [ctypes.POINTER(ctypes.c_size_t), ctypes.c_int]
    ctx_release = _fn(cuda, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease")
    launch = cuda.cuLaunchKernel
    launch.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p,
                                                                  ctypes.POINTER(ctypes.c_void_p),
                                                                  ctypes.POINTER(ctypes.c_void_p)]
    try:
        check(cuda.cuInit(0), "cuInit")
        version = ctypes.c_int()
        check(cuda.cuDriverGetVersion(ctypes.byref(version)), "cuDriverGetVersion")
        result["driver_api_version"] = f"{version.value // 1000}.{(version.value % 1000) // 10}"
        count = ctypes.c_int()
        check(cuda.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
        result["device_count"] = count.value

        n = elements
        nbytes = n * 4
        a = array("f", (float(i) for i in range(n)))
        b = array("f", (float(2 * i) for i in range(n)))
        for index in range(count.value):
            dev = ctypes.c_int()
            check(cuda.cuDeviceGet(ctypes.byref(dev), index), "cuDeviceGet")
            name = ctypes.create_string_buffer(256)
            check(cuda.cuDeviceGetName(name, 256, dev), "cuDeviceGetName")
            mem = ctypes.c_size_t()
            check(total_mem(ctypes.byref(mem), dev), "cuDeviceTotalMem")
            major, minor = ctypes.c_int(), ctypes.c_int()
            check(cuda.cuDeviceGetAttribute(ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                            dev), "cuDeviceGetAttribute")
            check(cuda.cuDeviceGetAttribute(ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                            dev), "cuDeviceGetAttribute")
            device: dict[str, Any] = {
                "index": index,
                "name": name.value.decode(errors="replace"),
                "memory_mib": mem.value // (1024 * 1024),
                "compute_capability": f"{major.value}.{minor.value}",
                "ok": False,
            }
            result["devices"].append(device)
            ctx = ctypes.c_void_p()
            check(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "cuDevicePrimaryCtxRetain")
            try:
                check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
                started = time.monotonic()
                module = ctypes.c_void_p()
                log = ctypes.create_string_buffer(4096)
                opts = (ctypes.c_int * 2)(CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
                vals = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p), ctypes.c_void_p(4096))
                rc = cuda.cuModuleLoadDataEx(ctypes.byref(module), ctypes.c_char_p(PTX_VADD + b"\0"),
                                             2, opts, vals)
                if rc != 0:
                    jit_log = log.value.decode(errors="replace").strip()
                    check(rc, f"cuModuleLoadDataEx (PTX JIT: {jit_log})")
                func = ctypes.c_void_p()
                check(cuda.cuModuleGetFunction(ctypes.byref(func), module, b"vadd"), "cuModuleGetFunction")
                da, db, dc = cu_ptr(), cu_ptr(), cu_ptr()
                for p in (da, db, dc):
                    check(mem_alloc(ctypes.byref(p), nbytes), "cuMemAlloc")
                try:
                    a_addr, _ = a.buffer_info()
                    b_addr, _ = b.buffer_info()
                    check(htod(da, a_addr, nbytes), "cuMemcpyHtoD")
                    check(htod(db, b_addr, nbytes), "cuMemcpyHtoD")
                    nn = ctypes.c_uint32(n)
                    params = (ctypes.c_void_p * 4)(*[ctypes.addressof(x) for x in (da, db, dc, nn)])
                    block = 256
                    grid = (n + block - 1) // block
                    check(launch(func, grid, 1, 1, block, 1, 1, 0, None, params, None), "cuLaunchKernel")
                    check(cuda.cuCtxSynchronize(), "cuCtxSynchronize (the kernel)")
                    c = array("f", bytes(nbytes))
                    c_addr, _ = c.buffer_info()
                    check(dtoh(c_addr, dc, nbytes), "cuMemcpyDtoH")
                    bad = next((i for i in range(n) if c[i] != a[i] + b[i]), None)
                    if bad is not None:
                        raise CudaError(f"wrong result at element {bad}: {c[bad]} != {a[bad] + b[bad]}")
                finally:
                    for p in (da, db, dc):
                        if p.value:
                            mem_free(p)
                    cuda.cuModuleUnload(module)
                device["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
                device["elements"] = n
                device["ok"] = True
            finally:
                ctx_release(dev)
        result["ok"] = count.value > 0 and all(d["ok"] for d in result["devices"])
        if count.value == 0:
            result["error"] = "cuDeviceGetCount found no device"
    except CudaError as exc:
        result["error"] = str(exc)
    return result


def nvml_check() -> dict[str, Any]:
    """NVML: the kernel driver's version, the library's own version, the device count."""
    result: dict[str, Any] = {"ok": False, "driver_version": None, "nvml_version": None,
                              "library_version": None, "device_count": None, "library_path": None,
                              "error": None}
    try:
        nvml = _load("libnvidia-ml.so.1", "libnvidia-ml.so")
    except OSError as exc:
        result["error"] = f"libnvidia-ml cannot be loaded: {exc}"
        return result
    result["library_path"] = _loaded_path("libnvidia-ml")
    init = getattr(nvml, "nvmlInit_v2", None) or nvml.nvmlInit
    rc = init()
    if rc != 0:
        err = nvml.nvmlErrorString
        err.restype = ctypes.c_char_p
        result["error"] = f"nvmlInit failed: {err(rc).decode()} ({rc})"
        return result
    try:
        buf = ctypes.create_string_buffer(96)
        if nvml.nvmlSystemGetDriverVersion(buf, 96) == 0:
            result["driver_version"] = buf.value.decode()
        if nvml.nvmlSystemGetNVMLVersion(buf, 96) == 0:
            result["nvml_version"] = buf.value.decode()
            result["library_version"] = library_version(result["nvml_version"])
        count = ctypes.c_uint()
        get_count = getattr(nvml, "nvmlDeviceGetCount_v2", None) or nvml.nvmlDeviceGetCount
        if get_count(ctypes.byref(count)) == 0:
            result["device_count"] = count.value
        result["ok"] = result["driver_version"] is not None
    finally:
        nvml.nvmlShutdown()
    return result


def library_version(nvml_version: str) -> str:
    """The driver version an NVML library belongs to.

    nvmlSystemGetNVMLVersion gives "13.580.159.04": the CUDA major release first (below 100),
    then the driver version. Driver branches are 3 digits, so a leading number below 100
    followed by two or more parts is the CUDA prefix.
    """
    parts = nvml_version.split(".")
    if len(parts) >= 3 and parts[0].isdigit() and int(parts[0]) < 100:
        return ".".join(parts[1:])
    return nvml_version


def _loaded_path(stem: str) -> str | None:
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if line.strip() else ""
                if stem in os.path.basename(path):
                    return os.path.realpath(path)
    except OSError:
        pass
    return None


def find_nvcc(option: str) -> str | None:
    if option not in ("auto", "never"):
        return option if os.access(option, os.X_OK) else None
    if option == "never":
        return None
    found = shutil.which("nvcc")
    if found:
        return found
    versioned = sorted(glob.glob("/usr/local/cuda-*/bin/nvcc"), reverse=True)
    for candidate in ["/usr/local/cuda/bin/nvcc", *versioned]:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def nvcc_check(option: str, elements: int) -> dict[str, Any]:
    nvcc = find_nvcc(option)
    result: dict[str, Any] = {"ran": False, "ok": None, "path": nvcc, "release": None, "output": "",
                              "error": None}
    if nvcc is None:
        result["error"] = "nvcc not found" if option != "never" else "nvcc check turned off"
        return result
    try:
        version = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60, check=False)
        m = re.search(r"release (\d+\.\d+)", version.stdout)
        result["release"] = m.group(1) if m else None
        with tempfile.TemporaryDirectory(prefix="provision-vadd-") as tmp:
            src = os.path.join(tmp, "vadd.cu")
            exe = os.path.join(tmp, "vadd")
            with open(src, "w") as handle:
                handle.write(VADD_CU)
            result["ran"] = True
            build = subprocess.run([nvcc, "-O2", "-o", exe, src], capture_output=True, text=True,
                                   timeout=600, check=False)
            if build.returncode != 0:
                result.update(ok=False, error="nvcc failed: " + (build.stderr or build.stdout)[-800:])
                return result
            run = subprocess.run([exe, str(elements)], capture_output=True, text=True, timeout=300,
                                 check=False)
            result["output"] = (run.stdout + run.stderr).strip()[-2000:]
            result["ok"] = run.returncode == 0 and "DEVICES" in run.stdout and "FAIL" not in run.stdout
            m = re.search(r"DEVICES (\d+)", run.stdout)
            result["device_count"] = int(m.group(1)) if m else None
            if not result["ok"]:
                result["error"] = f"the vector-add built by nvcc failed (exit {run.returncode})"
    except (OSError, subprocess.TimeoutExpired) as exc:
        result.update(ok=False, error=str(exc))
    return result


def run_module() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "elements": {"type": "int", "default": 1048576},
            "nvcc": {"type": "str", "default": "auto"},
        },
        supports_check_mode=True,
    )
    elements = module.params["elements"]
    nvml = nvml_check()
    cuda = cuda_check(elements)
    nvcc = nvcc_check(module.params["nvcc"], elements)
    module.exit_json(changed=False, cuda=cuda, nvml=nvml, nvcc=nvcc)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
