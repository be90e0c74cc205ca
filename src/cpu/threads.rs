//! The CPU thread count (a process-wide user setting, default = available cores) and the team
//! of threads that shares each time step.
//!
//! A layer call runs its time loop on the calling thread and starts `threads - 1` helpers for
//! the duration of the call. Each step hands every thread one chunk of work and waits for all
//! of them: the helpers spin between steps (a step is tens of microseconds, far shorter than
//! an OS wake-up), so the per-step hand-off costs well under a microsecond instead of the
//! several microseconds of a sleeping pool. Helpers fall back to yielding the CPU after a
//! while, and exit when the call ends.

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
}

thread_local! {
    /// The team of the layer call running on this thread, if any.
    static CURRENT: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0usize;
    loop {
        let mut spins = 0u32;
        loop {
            let g = shared.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            spins = spins.saturating_add(1);
            if spins < 200_000 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
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

/// Runs `body` with a team of `threads` threads (the caller plus `threads - 1` helpers) that
/// [`for_each_task`] calls on this thread use. With one thread, `body` just runs.
pub(crate) fn with_team<R>(threads: usize, body: impl FnOnce() -> R) -> R {
    if threads <= 1 || !CURRENT.with(|c| c.get().is_null()) {
        return body();
    }
    let shared = Shared {
        threads,
        generation: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        job: AtomicPtr::new(std::ptr::null_mut()),
        stop: AtomicBool::new(false),
    };
    std::thread::scope(|s| {
        let mut spawned = 0;
        for i in 1..threads {
            let sh = &shared;
            if std::thread::Builder::new()
                .name(format!("recurrent-{i}"))
                .spawn_scoped(s, move || worker(sh, i))
                .is_ok()
            {
                spawned += 1;
            }
        }
        if spawned + 1 != threads {
            // Could not start every helper: run alone (the started ones exit at `stop`).
            shared.stop.store(true, Ordering::Release);
            return body();
        }
        CURRENT.with(|c| c.set(&shared));
        struct Reset<'a>(&'a Shared);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(std::ptr::null()));
                self.0.stop.store(true, Ordering::Release);
            }
        }
        let _reset = Reset(&shared);
        body()
    })
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
    // SAFETY: a non-null CURRENT points at the `Shared` of the `with_team` call that is running
    // on this thread further up the stack; it is reset before that `Shared` is dropped.
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
    shared.generation.fetch_add(1, Ordering::AcqRel);
    job(0);
    let mut spins = 0u32;
    while shared.done.load(Ordering::Acquire) < n - 1 {
        spins = spins.saturating_add(1);
        if spins < 1_000_000 {
            std::hint::spin_loop();
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
