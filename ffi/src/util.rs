//! The few places that read or write through pointers received from C, and small helpers.

use std::ffi::{c_char, CStr, CString};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::status::tether_status::{self, *};
use crate::status::Fail;

/// Lock a mutex, ignoring poisoning (every critical section here leaves its data consistent,
/// and user code never runs while one of these locks is held... except the callback gate,
/// whose data is `()`).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A required C string argument, as UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and unmodified for
/// `'a` (the duration of the export call).
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Fail> {
    required(ptr, what)?;
    // SAFETY: non-NULL, and NUL-terminated and live for 'a by this function's contract.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|e| {
        Fail::new(
            TETHER_ERR_INVALID_ARGUMENT,
            format!("{what} is not valid UTF-8: {e}"),
        )
    })
}

/// A `(pointer, length)` buffer argument. A zero length may come with any pointer, NULL
/// included; a non-zero length needs a non-NULL pointer.
///
/// # Safety
/// If `len > 0` and `ptr` is not NULL, `ptr` points to `len` readable bytes that stay valid
/// and unmodified for `'a` (the duration of the export call).
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Fail::new(
            TETHER_ERR_NULL_PARAMETER,
            format!("{what} is NULL with a length of {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Fail::new(
            TETHER_ERR_TOO_LARGE,
            format!("{what} length {len} is larger than any buffer can be"),
        ));
    }
    // SAFETY: non-NULL, len <= isize::MAX, and `len` readable bytes live for 'a by this
    // function's contract. u8 has no alignment requirement.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Check that a required pointer argument is not NULL.
pub(crate) fn required<T>(ptr: *const T, what: &str) -> Result<(), Fail> {
    if ptr.is_null() {
        return Err(Fail::new(
            TETHER_ERR_NULL_PARAMETER,
            format!("{what} is NULL"),
        ));
    }
    Ok(())
}

/// Write an optional output.
///
/// # Safety
/// `out` is NULL or valid for a write of one `T` (alignment included).
pub(crate) unsafe fn write_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL and writable by this function's contract. `write` does not drop
        // the (possibly uninitialised) old value.
        unsafe { out.write(value) };
    }
}

/// A C string for a callback argument: interior NULs (a server's close reason may carry
/// one) become U+FFFD so the text is never cut short silently.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| {
        let cleaned = s.replace('\0', "\u{FFFD}");
        CString::new(cleaned).unwrap_or_default()
    })
}

/// A last-error slot: the message of the most recent failed call on one handle.
#[derive(Default)]
pub(crate) struct LastError(Mutex<String>);

impl LastError {
    /// Record `fail` and return its status (the usual tail of an export).
    pub(crate) fn record(&self, fail: Fail) -> tether_status {
        *lock(&self.0) = fail.message;
        fail.status
    }

    /// Copy the message to a C buffer; see `tether_client_last_error` for the contract.
    ///
    /// # Safety
    /// `buf` is NULL or valid for writes of `len` bytes; `needed_out` is NULL or valid for a
    /// write of one `size_t`.
    pub(crate) unsafe fn copy_to(
        &self,
        buf: *mut c_char,
        len: usize,
        needed_out: *mut usize,
    ) -> tether_status {
        let message = lock(&self.0).clone();
        // SAFETY: forwarded from this function's contract.
        unsafe { copy_c_message(&message, buf, len, needed_out) }
    }
}

/// Copy `message` NUL-terminated into `buf[..len]`, truncating at a UTF-8 character boundary
/// if needed; `*needed_out` (if not NULL) gets the size that holds all of it, NUL included.
///
/// # Safety
/// `buf` is NULL or valid for writes of `len` bytes; `needed_out` is NULL or valid for a
/// write of one `size_t`.
pub(crate) unsafe fn copy_c_message(
    message: &str,
    buf: *mut c_char,
    len: usize,
    needed_out: *mut usize,
) -> tether_status {
    // Interior NULs cannot be represented: the stored messages never contain any (see
    // `c_string`), but be exact anyway.
    let message = message.replace('\0', "\u{FFFD}");
    let needed = message.len() + 1;
    if buf.is_null() && len > 0 {
        return TETHER_ERR_NULL_PARAMETER;
    }
    // SAFETY: NULL or writable, by contract.
    unsafe { write_opt(needed_out, needed) };
    if len == 0 {
        return TETHER_ERR_BUFFER_TOO_SMALL;
    }
    let mut n = message.len().min(len - 1);
    while !message.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `buf` is non-NULL (checked above) and writable for `len` bytes by contract;
    // n + 1 <= len; source and destination cannot overlap (the source is our own String).
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), buf.cast::<u8>(), n);
        buf.add(n).write(0);
    }
    if n < message.len() {
        TETHER_ERR_BUFFER_TOO_SMALL
    } else {
        TETHER_OK
    }
}

/// Milliseconds as a Duration.
pub(crate) fn ms(millis: u64) -> std::time::Duration {
    std::time::Duration::from_millis(millis)
}

/// A Duration in whole milliseconds, saturating.
pub(crate) fn to_ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A Duration in whole microseconds, saturating.
pub(crate) fn to_us(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_truncates_at_a_char_boundary() {
        let mut buf = [0x55 as c_char; 8];
        let mut needed = 0usize;
        // "héllo wörld": é and ö are two bytes each.
        // SAFETY: buf has 8 writable bytes; needed is a valid usize.
        let st = unsafe { copy_c_message("héllo wörld", buf.as_mut_ptr(), 8, &mut needed) };
        assert_eq!(st, TETHER_ERR_BUFFER_TOO_SMALL);
        assert_eq!(needed, "héllo wörld".len() + 1);
        // SAFETY: the copy NUL-terminated the buffer.
        let got = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(got.to_str().unwrap(), "héllo ");
        // SAFETY: as above, with a buffer big enough.
        let mut big = [0 as c_char; 32];
        let st = unsafe { copy_c_message("ok", big.as_mut_ptr(), 32, std::ptr::null_mut()) };
        assert_eq!(st, TETHER_OK);
        // SAFETY: a size query writes nothing to the (NULL) buffer.
        let st = unsafe { copy_c_message("ok", std::ptr::null_mut(), 0, &mut needed) };
        assert_eq!((st, needed), (TETHER_ERR_BUFFER_TOO_SMALL, 3));
    }

    #[test]
    fn c_strings_never_lose_text_to_a_nul() {
        assert_eq!(c_string("a\0b").to_str().unwrap(), "a\u{FFFD}b");
        assert_eq!(c_string("plain").to_str().unwrap(), "plain");
    }
}
