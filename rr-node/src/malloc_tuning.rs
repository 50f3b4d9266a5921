//! Keeps the C allocator from handing freed buffers back to the kernel after
//! every chunk of a large transfer (glibc on Linux only; elsewhere a no-op).
//!
//! A record streams through in 1 MiB envelope chunks (and the HTTP stack's
//! read buffers of up to a few hundred KiB). With glibc's defaults, a buffer
//! of that size is either its own `mmap` or sits at the top of a heap that is
//! trimmed as soon as it is freed, so the next chunk faults in and zeroes
//! fresh pages: about 150,000 page faults per GiB in the node and 80,000 in
//! the client, measured with `scripts/bench_cli_1gib.sh`. Serving buffers of
//! up to 8 MiB from the heap, and trimming a heap only once 32 MiB lie free
//! at its top, lets them be reused instead: a few thousand faults per GiB,
//! and peak RSS stays within a few MiB of what it was.
//!
//! Shared by the `rr` and `rr-node` binaries (never the library: an
//! integrator's process keeps its own allocator settings).

/// Largest allocation served from the heap instead of its own `mmap`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 8 << 20;
/// Free memory at the top of a heap above which glibc returns it to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 32 << 20;

/// Applies the settings, unless the operator set glibc's malloc tunables
/// themselves (`GLIBC_TUNABLES=glibc.malloc.…`): theirs win. Call first
/// thing in `main`, before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    if operator_tuned(std::env::var_os("GLIBC_TUNABLES").as_deref()) {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only sets allocator parameters; it is called here
    // before the program starts any other thread, and both values are in
    // range (a failure returns 0 and leaves the defaults, which is harmless).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Whether `GLIBC_TUNABLES` (its value, if set) sets any of malloc's tunables.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn operator_tuned(tunables: Option<&std::ffi::OsStr>) -> bool {
    tunables.is_some_and(|v| {
        v.to_string_lossy()
            .split(':')
            .any(|t| t.starts_with("glibc.malloc."))
    })
}

/// Applies the settings (nothing to do on this platform).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::operator_tuned;
    use std::ffi::OsStr;

    #[test]
    fn an_operators_malloc_tunables_win() {
        assert!(!operator_tuned(None));
        assert!(!operator_tuned(Some(OsStr::new(""))));
        assert!(!operator_tuned(Some(OsStr::new("glibc.rtld.nns=2"))));
        assert!(operator_tuned(Some(OsStr::new(
            "glibc.malloc.trim_threshold=0"
        ))));
        assert!(operator_tuned(Some(OsStr::new(
            "glibc.rtld.nns=2:glibc.malloc.arena_max=2"
        ))));
    }
}
