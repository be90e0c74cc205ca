#pragma once
// Host stub for emulation: only enough to compile the f32 paths.
struct __half { float v; };
inline float __half2float(__half h) { return h.v; }
inline __half __float2half_rn(float f) { return __half{f}; }
