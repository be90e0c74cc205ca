#pragma once
// Host emulation of CUDA's __half: IEEE binary16 bits, round-to-nearest-even conversion
// (GCC's _Float16), as on the GPU and in the `half` crate.
#include <cstdint>
#include <cstring>
struct __half { uint16_t bits; };
inline float __half2float(__half h) { _Float16 v; std::memcpy(&v, &h.bits, 2); return (float)v; }
inline __half __float2half_rn(float f) { _Float16 v = (_Float16)f; __half h; std::memcpy(&h.bits, &v, 2); return h; }
