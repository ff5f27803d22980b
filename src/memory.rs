//! Giving freed memory back to the OS from an idle thread. The binary's allocator (mimalloc, set
//! in `main.rs`) returns pages a thread freed only from inside a later allocation of that same
//! thread, a second or more after the free. A worker holding a million idle subscribers allocates
//! nothing for minutes, so what it freed while they connected (grown tables' old copies, request
//! transients) would stay resident. `release_freed` asks for that purge explicitly; workers call it
//! once per clock tick.
//!
//! Depends on: std and the allocator's C interface only.

/// Purges what this thread freed more than the allocator's purge delay ago (a no-op for memory
/// still in use, and when mimalloc is not the global allocator, as in unit tests).
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers and has no preconditions: it may be called from any
    // thread at any time, and only visits the calling thread's own mimalloc heap (an
    // uninitialised heap makes it return at once).
    unsafe { libmimalloc_sys::mi_collect(false) };
}
