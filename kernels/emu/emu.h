#pragma once
#include <barrier>
#include <cmath>
#include <thread>
#include <vector>
struct dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* g_bar = nullptr;
inline void __syncthreads() { g_bar->arrive_and_wait(); }
#define __global__
#define __device__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(x)
#define __restrict__
#define __shared__ static
template <class T> T __ldg(const T* p) { return *p; }
template <class F> void launch(dim3 grid, dim3 block, F f) {
    if (!grid.x || !grid.y || !grid.z) return;
    gridDim = grid; blockDim = block;
    unsigned n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> bar(n);
        g_bar = &bar;
        std::vector<std::thread> ts;
        for (unsigned tz = 0; tz < block.z; ++tz)
        for (unsigned ty = 0; ty < block.y; ++ty)
        for (unsigned tx = 0; tx < block.x; ++tx)
            ts.emplace_back([=, &f] { threadIdx = {tx, ty, tz}; blockIdx = {bx, by, bz}; f(); });
        for (auto& t : ts) t.join();
    }
}
