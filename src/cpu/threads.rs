//! The CPU thread count (a process-wide user setting, default = available cores) and the team
//! of threads that shares each time step.
//!
//! A layer call runs its time loop on the calling thread; `threads - 1` helper threads,
//! started once per process (per thread count), take one chunk of each shared step. Helpers
//! spin between steps (a step is microseconds long, far shorter than an OS wake-up), so the
//! per-step hand-off costs well under a microsecond, and park after a millisecond or two
//! without work (between calls). The spin loop uses plain loads, not PAUSE: on this VM a
//! PAUSE loop made the hand-off 5x slower.

use crate::{Error, Result};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

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

/// One unit of work handed to every thread: `job(i)` runs task `i` (a no-op past the last).
type Job<'a> = dyn Fn(usize) + Sync + 'a;

/// What the threads of a team share.
struct Shared {
    threads: usize,
    generation: AtomicUsize,
    done: AtomicUsize,
    /// Points at a `&Job` that lives on the stack of [`Team::run`] for one generation.
    job: AtomicPtr<&'static Job<'static>>,
    stop: AtomicBool,
    /// `sleeping[i - 1]`: helper `i` has parked (or is about to) and needs an unpark.
    sleeping: Vec<AtomicBool>,
    /// The helpers' handles, for unparking.
    handles: Mutex<Vec<std::thread::Thread>>,
}

/// Spins before a helper parks: a millisecond or two, far longer than the hand-off between
/// two steps, so helpers only park between layer calls or in long serial stretches.
const SPINS_BEFORE_PARK: u32 = 2_000_000;

impl Shared {
    /// Wakes helper `i` if it parked.
    fn wake(&self, i: usize) {
        if self.sleeping[i - 1].load(Ordering::SeqCst) {
            if let Ok(h) = self.handles.lock() {
                if let Some(t) = h.get(i - 1) {
                    t.unpark();
                }
            }
        }
    }
}

thread_local! {
    /// The team of the layer call running on this thread, if any.
    static CURRENT: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0usize;
    loop {
        // Spin (plain loads: a PAUSE loop makes some hypervisors deschedule the vCPU), then
        // park until the next generation or `stop`.
        let mut spins = 0u32;
        loop {
            let g = shared.generation.load(Ordering::SeqCst);
            if g != seen {
                seen = g;
                break;
            }
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            spins = spins.saturating_add(1);
            if spins >= SPINS_BEFORE_PARK {
                let flag = &shared.sleeping[index - 1];
                flag.store(true, Ordering::SeqCst);
                // Re-check after announcing the sleep: a new generation published before the
                // announcement was not followed by an unpark.
                if shared.generation.load(Ordering::SeqCst) == seen
                    && !shared.stop.load(Ordering::SeqCst)
                {
                    std::thread::park();
                }
                flag.store(false, Ordering::SeqCst);
                spins = 0;
            } else {
                std::hint::black_box(spins);
            }
        }
        let job = shared.job.load(Ordering::Acquire);
        if !job.is_null() {
            // SAFETY: `Team::run` stored a pointer to a `&Job` on its own stack before bumping
            // the generation, and does not return (so the pointee stays alive and unchanged)
            // until every helper has incremented `done` below for this generation.
            let job: &Job = unsafe { *job };
            // A panicking task must still be counted, or the caller would wait forever; the
            // caller reports the missing result as an error.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(index)));
        }
        shared.done.fetch_add(1, Ordering::AcqRel);
    }
}

/// The process-wide team: helpers are started once (per thread count) and park between
/// calls, so that they stay on their own cores; a freshly spawned thread may start on the
/// caller's core and spin there until the scheduler moves it.
struct Pool {
    shared: std::sync::Arc<Shared>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for i in 1..self.shared.threads {
            self.shared.wake(i);
        }
    }
}

fn new_pool(threads: usize) -> Option<Pool> {
    let shared = std::sync::Arc::new(Shared {
        threads,
        generation: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        job: AtomicPtr::new(std::ptr::null_mut()),
        stop: AtomicBool::new(false),
        sleeping: (1..threads).map(|_| AtomicBool::new(false)).collect(),
        handles: Mutex::new(Vec::new()),
    });
    let mut handles = Vec::new();
    for i in 1..threads {
        let sh = shared.clone();
        match std::thread::Builder::new()
            .name(format!("recurrent-{i}"))
            .spawn(move || worker(&sh, i))
        {
            Ok(h) => handles.push(h.thread().clone()),
            Err(_) => {
                let pool = Pool { shared };
                if let Ok(mut v) = pool.shared.handles.lock() {
                    *v = handles;
                }
                return None; // dropping `pool` stops the helpers started so far
            }
        }
    }
    if let Ok(mut v) = shared.handles.lock() {
        *v = handles;
    }
    Some(Pool { shared })
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// Runs `body` with a team of `threads` threads (the caller plus `threads - 1` helpers) that
/// [`for_each_task`] calls on this thread use. With one thread, or while another call holds
/// the team (layers called from several threads at once), `body` runs on the caller alone.
pub(crate) fn with_team<R>(threads: usize, body: impl FnOnce() -> R) -> R {
    if threads <= 1 || !CURRENT.with(|c| c.get().is_null()) {
        return body();
    }
    let mut guard = match POOL.try_lock() {
        Ok(g) => g,
        Err(_) => return body(),
    };
    if guard.as_ref().map(|p| p.shared.threads) != Some(threads) {
        *guard = None;
        *guard = new_pool(threads);
    }
    let Some(pool) = guard.as_ref() else {
        return body();
    };
    CURRENT.with(|c| c.set(std::sync::Arc::as_ptr(&pool.shared)));
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(std::ptr::null()));
        }
    }
    let _reset = Reset;
    body()
}

/// Runs `f` on every task: on the calling thread's team when it has one and there are several
/// tasks (task `i` on thread `i`, so at most as many tasks as threads are run in parallel;
/// extra tasks run on the caller), else one after the other.
pub(crate) fn for_each_task<T: Send>(
    tasks: Vec<T>,
    f: impl Fn(T) -> Result<()> + Sync,
) -> Result<()> {
    let team = CURRENT.with(|c| c.get());
    if tasks.len() <= 1 || team.is_null() {
        for t in tasks {
            f(t)?;
        }
        return Ok(());
    }
    // SAFETY: a non-null CURRENT points at the `Shared` of the pool that the `with_team` call
    // running on this thread further up the stack holds locked; it is reset before that lock
    // is released, and the pool (with its `Shared`) is only replaced under the lock.
    let shared: &Shared = unsafe { &*team };
    let n = shared.threads;
    let mut tasks = tasks;
    let extra: Vec<T> = if tasks.len() > n {
        tasks.split_off(n)
    } else {
        Vec::new()
    };
    let count = tasks.len();
    let slots: Vec<Mutex<Option<T>>> = tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<Result<()>>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let job = |i: usize| {
        if i >= count {
            return;
        }
        let task = match slots[i].lock() {
            Ok(mut s) => s.take(),
            Err(_) => None,
        };
        if let Some(t) = task {
            let r = f(t);
            if let Ok(mut slot) = results[i].lock() {
                *slot = Some(r);
            }
        }
    };
    let job_ref: &Job = &job;
    // SAFETY: only the lifetime is erased. The pointer is published for this generation only,
    // and this function waits below until every helper has finished with it (`done`), then
    // clears it, before `job`, `slots` and `results` go out of scope.
    let erased: &'static Job<'static> =
        unsafe { std::mem::transmute::<&Job, &'static Job<'static>>(job_ref) };
    let holder: &'static Job<'static> = erased;
    shared.done.store(0, Ordering::Release);
    shared.job.store(
        &holder as *const &'static Job<'static> as *mut _,
        Ordering::Release,
    );
    shared.generation.fetch_add(1, Ordering::SeqCst);
    for i in 1..n {
        shared.wake(i);
    }
    job(0);
    let mut spins = 0u32;
    while shared.done.load(Ordering::Acquire) < n - 1 {
        spins = spins.saturating_add(1);
        if spins < 1_000_000 {
            std::hint::black_box(spins);
        } else {
            std::thread::yield_now();
        }
    }
    shared.job.store(std::ptr::null_mut(), Ordering::Release);
    for t in extra {
        f(t)?;
    }
    for (i, r) in results.into_iter().enumerate() {
        match r.into_inner() {
            Ok(Some(r)) => r?,
            _ => {
                return Err(Error::invalid(
                    "cpu threads",
                    format!("internal: task {i} of a step did not complete (a worker panicked)"),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod timing {
    use super::*;

    /// The cost of one shared step with nothing to do: the hand-off to the helpers and back
    /// (2026-11-23, this 2-core VM: 340 ns).
    #[test]
    #[ignore = "timing, run by hand with --release --ignored --nocapture"]
    fn time_empty_shared_step() {
        with_team(2, || {
            let mut best = f64::INFINITY;
            for _ in 0..7 {
                let reps = 100_000;
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    for_each_task(vec![0usize, 1], |i| {
                        std::hint::black_box(i);
                        Ok(())
                    })
                    .unwrap();
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            println!("empty 2-task step: {:.0} ns", best * 1e9);
        });
    }
}
