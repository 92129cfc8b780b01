//! Size-prefixed structs: `tether_callbacks` (read from the caller) and `tether_stats`
//! (written to the caller) begin with `size_t struct_size`, the `sizeof` the caller was
//! compiled with. Reading or writing only `min(struct_size, our size)` bytes is what lets a
//! program built against an older header (a shorter struct) run on a newer library without an
//! over-read or an overflow, and a newer program on an older library (the tail is ignored on
//! read and left alone on write). Fields are only ever appended, so the bytes that fit mean
//! the same thing on both sides.

use std::mem::{offset_of, size_of, MaybeUninit};

use crate::callbacks::tether_callbacks;
use crate::client::tether_stats;
use crate::status::tether_status::TETHER_ERR_INVALID_ARGUMENT;
use crate::status::Fail;

/// The fields of the first sized version of `tether_callbacks`: everything before
/// `on_session_reset` (which was appended later: a program built before it passes this size,
/// and its `on_session_reset` reads as NULL).
pub(crate) const CALLBACKS_MIN_SIZE: usize = offset_of!(tether_callbacks, on_session_reset);

/// The fields of the first sized version of `tether_stats` (all of today's).
pub(crate) const STATS_MIN_SIZE: usize =
    offset_of!(tether_stats, last_app_rtt_us) + size_of::<u64>();

/// The caller's `struct_size`, checked against the first version's size; `what` names the
/// argument and `name` the struct (`tether_<name>`, initialised by `TETHER_<NAME>_INIT`).
///
/// # Safety
/// `ptr` is non-NULL and points to at least a readable, aligned `size_t` (the struct's first
/// field).
unsafe fn caller_size<T>(ptr: *const T, what: &str, name: &str, min: usize) -> Result<usize, Fail> {
    // SAFETY: by this function's contract; `struct_size` is the first field of a `repr(C)`
    // struct, so it sits at offset 0 with the struct's (at least `usize`) alignment.
    let size = unsafe { ptr.cast::<usize>().read() };
    if size < min {
        return Err(Fail::new(
            TETHER_ERR_INVALID_ARGUMENT,
            format!(
                "{what}->struct_size is {size}, smaller than the first version of the struct \
                 ({min} bytes): set it to sizeof the struct (TETHER_{}_INIT or \
                 tether_{name}_init())",
                name.to_uppercase()
            ),
        ));
    }
    Ok(size)
}

/// A copy of the caller's callbacks: the `struct_size` bytes that fit, NULL for the rest.
///
/// # Safety
/// `ptr` is non-NULL, aligned, and its first `struct_size` bytes (as the caller wrote it) are
/// readable for the call and hold a valid prefix of a `tether_callbacks`.
pub(crate) unsafe fn read_callbacks(
    ptr: *const tether_callbacks,
) -> Result<tether_callbacks, Fail> {
    // SAFETY: forwarded from this function's contract.
    let size = unsafe { caller_size(ptr, "callbacks", "callbacks", CALLBACKS_MIN_SIZE) }?;
    let n = size.min(size_of::<tether_callbacks>());
    let mut out = MaybeUninit::<tether_callbacks>::zeroed();
    // SAFETY: `n` bytes are readable at `ptr` (the caller's struct_size, capped at ours) and
    // writable in `out`; the two do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), out.as_mut_ptr().cast::<u8>(), n) };
    // SAFETY: all-zero bytes are a valid `tether_callbacks` (a 0 size and NULL function
    // pointers); the copied prefix holds the caller's valid fields.
    let mut callbacks = unsafe { out.assume_init() };
    callbacks.struct_size = size;
    Ok(callbacks)
}

/// The caller's `tether_stats` size, checked (before anything is written).
///
/// # Safety
/// `ptr` is non-NULL and its `struct_size` field is readable.
pub(crate) unsafe fn stats_size(ptr: *const tether_stats) -> Result<usize, Fail> {
    // SAFETY: forwarded from this function's contract.
    unsafe { caller_size(ptr, "stats_out", "stats", STATS_MIN_SIZE) }
}

/// Write `value` to the caller's struct: the `size` bytes that fit (its `struct_size` is kept).
///
/// # Safety
/// `out` is non-NULL, aligned, and `size` bytes are writable there.
pub(crate) unsafe fn write_stats(out: *mut tether_stats, mut value: tether_stats, size: usize) {
    value.struct_size = size;
    let n = size.min(size_of::<tether_stats>());
    // SAFETY: `n` bytes readable in `value`, writable at `out` (this function's contract);
    // no overlap (`value` is a local).
    unsafe {
        std::ptr::copy_nonoverlapping(std::ptr::from_ref(&value).cast::<u8>(), out.cast::<u8>(), n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shorter_callbacks_struct_reads_null_for_the_missing_fields() {
        unsafe extern "C" fn ready(_: *mut std::ffi::c_void) {}
        unsafe extern "C" fn reset(
            _: *mut std::ffi::c_void,
            _: *const crate::callbacks::tether_session_reset,
        ) {
        }
        let cb = tether_callbacks {
            struct_size: CALLBACKS_MIN_SIZE,
            on_ready: Some(ready),
            on_session_reset: Some(reset),
            ..tether_callbacks::default()
        };
        // SAFETY: a live, aligned struct.
        let got = unsafe { read_callbacks(&cb) }.expect("accepted");
        assert!(got.on_ready.is_some());
        assert!(
            got.on_session_reset.is_none(),
            "beyond struct_size: not read"
        );
    }

    #[test]
    fn a_too_small_size_is_refused() {
        let cb = tether_callbacks::default(); // struct_size 0
                                              // SAFETY: a live, aligned struct.
        let err = unsafe { read_callbacks(&cb) }.err().expect("refused");
        assert_eq!(err.status, TETHER_ERR_INVALID_ARGUMENT);
        assert!(err.message.contains("struct_size is 0"), "{}", err.message);
        let st = tether_stats::default();
        // SAFETY: a live, aligned struct.
        assert!(unsafe { stats_size(&st) }.is_err());
    }

    #[test]
    fn stats_are_written_only_up_to_struct_size() {
        let mut buf = [u64::MAX; 32];
        let out = buf.as_mut_ptr().cast::<tether_stats>();
        let value = tether_stats {
            messages_sent: 7,
            ..tether_stats::default()
        };
        let size = size_of::<tether_stats>() + 8;
        // SAFETY: 32 * 8 bytes writable, more than `size`.
        unsafe { write_stats(out, value, size) };
        let words = size_of::<tether_stats>() / 8;
        assert_eq!(buf[0] as usize, size, "struct_size kept");
        assert_eq!(buf[1], 7);
        assert_eq!(
            buf[words],
            u64::MAX,
            "the newer caller's tail is left alone"
        );
    }
}
