//! Build script. Without the `cuda` feature it does nothing: the crate builds and tests on a
//! machine with no CUDA at all. The CUDA path (kernels/*.cu compiled to PTX by nvcc) is added by
//! the `cuda` feature.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels");
}
