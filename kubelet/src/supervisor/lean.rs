//! Keeping a supervisor small: there is one per pod, so its private memory
//! is what a pod costs the node beyond its containers. glibc's malloc
//! gives each thread that allocates an arena of its own (the log pumps)
//! and keeps freed memory; a supervisor is never busy enough to need
//! either.

/// One malloc arena for every thread of the process. Called first thing,
/// before any thread exists.
pub fn one_arena() {
    // SAFETY: mallopt sets a malloc tunable; M_ARENA_MAX takes a count.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// Hands the heap's free pages back to the kernel (the supervisor is about
/// to sleep).
pub fn trim() {
    // SAFETY: malloc_trim only releases free memory of the heap.
    unsafe { libc::malloc_trim(0) };
}
