#pragma once
// The CUDA execution model on the CPU, for kernels/emu/harness.cpp: every thread of a block is
// a real thread, __syncthreads a barrier of the block, warp shuffles are not used. `launch`
// runs blocks one after another (static __shared__ is a function-local static); `launch_coop`
// runs ALL blocks at once (a cooperative launch: grid barriers work), each block with its own
// dynamic shared memory and barrier (kernels launched so use dynamic shared memory only).
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
#define RECURRENT_EMU 1
struct dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline thread_local std::barrier<>* g_bar = nullptr;
inline thread_local unsigned char* g_smem = nullptr;
inline void __syncthreads() { g_bar->arrive_and_wait(); }
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __restrict__
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
#define RECURRENT_DYNAMIC_SMEM(name) unsigned char* name = g_smem
// A misaligned vector load faults on the GPU: the emulator aborts on one.
template <class T> void emu_check_align(const T* p) {
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0) {
        std::fprintf(stderr, "misaligned %zu-byte load at %p\n", sizeof(T), (const void*)p);
        std::abort();
    }
}
template <class T> T __ldg(const T* p) { emu_check_align(p); return *p; }
template <class T> T __ldcg(const T* p) { emu_check_align(p); return *p; }
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline float load_cg(const float* p) { return std::atomic_ref<const float>(*p).load(std::memory_order_relaxed); }
inline unsigned int spin_load(const unsigned int* p) { std::this_thread::yield(); return std::atomic_ref<const unsigned int>(*p).load(std::memory_order_acquire); }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { return std::atomic_ref<unsigned int>(*p).fetch_add(v); }
inline unsigned int atomicExch(unsigned int* p, unsigned int v) { return std::atomic_ref<unsigned int>(*p).exchange(v); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
template <class F> void launch(dim3 grid, dim3 block, F f) {
    if (!grid.x || !grid.y || !grid.z) return;
    gridDim = grid; blockDim = block;
    unsigned n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> bar(n);
        std::vector<std::thread> ts;
        for (unsigned tz = 0; tz < block.z; ++tz)
        for (unsigned ty = 0; ty < block.y; ++ty)
        for (unsigned tx = 0; tx < block.x; ++tx)
            ts.emplace_back([=, &f, &bar] { g_bar = &bar; threadIdx = {tx, ty, tz}; blockIdx = {bx, by, bz}; f(); });
        for (auto& t : ts) t.join();
    }
}
// 1-D grid and block; `smem` bytes of zeroed dynamic shared memory per block.
template <class F> void launch_coop(unsigned blocks, unsigned threads, size_t smem, F f) {
    if (!blocks) return;
    gridDim = {blocks, 1, 1}; blockDim = {threads, 1, 1};
    std::vector<std::barrier<>*> bars;
    std::vector<std::vector<unsigned char>> mem(blocks, std::vector<unsigned char>(smem + 16));
    for (unsigned b = 0; b < blocks; ++b) bars.push_back(new std::barrier<>(threads));
    std::vector<std::thread> ts;
    for (unsigned b = 0; b < blocks; ++b)
        for (unsigned t = 0; t < threads; ++t)
            ts.emplace_back([=, &f, &bars, &mem] { g_bar = bars[b]; g_smem = mem[b].data(); threadIdx = {t, 0, 0}; blockIdx = {b, 0, 0}; f(); });
    for (auto& t : ts) t.join();
    for (auto* p : bars) delete p;
}
