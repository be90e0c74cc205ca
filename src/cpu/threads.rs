//! The CPU thread count: a process-wide user setting, default = available cores.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads the CPU path uses (0 = the number of available cores).
pub fn set_num_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// The number of threads the CPU path uses.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
}

/// Runs `f` inside a rayon pool of `n` threads (built once per size and kept); `f` runs on
/// the calling thread when `n == 1` or a pool cannot be built.
pub(crate) fn install<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    if n <= 1 {
        return f();
    }
    static POOLS: OnceLock<Mutex<HashMap<usize, &'static rayon::ThreadPool>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let pool = {
        let mut map = match pools.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match map.get(&n) {
            Some(p) => Some(*p),
            None => match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
                Ok(p) => {
                    let p: &'static rayon::ThreadPool = Box::leak(Box::new(p));
                    map.insert(n, p);
                    Some(p)
                }
                Err(_) => None,
            },
        }
    };
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}
