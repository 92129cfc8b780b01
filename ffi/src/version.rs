//! Version of the C API, as macros in the header and as a function for the loaded library.

use std::ffi::c_char;

/// Major version of the Tether C API this header describes.
pub const TETHER_VERSION_MAJOR: u32 = 0;
/// Minor version of the Tether C API this header describes.
pub const TETHER_VERSION_MINOR: u32 = 1;
/// Patch version of the Tether C API this header describes.
pub const TETHER_VERSION_PATCH: u32 = 0;
/// `MAJOR * 10000 + MINOR * 100 + PATCH`, for `#if TETHER_VERSION_NUMBER >= ...`.
pub const TETHER_VERSION_NUMBER: u32 = 100;

/// The version of the loaded library, e.g. "0.1.0" (compare with `TETHER_VERSION_STRING`
/// to detect a header/library mismatch). Static; never NULL; do not free.
///
/// Ownership: returns a static string: never NULL, do not free.
/// Threads: any thread.
/// Errors: none.
#[no_mangle]
pub extern "C" fn tether_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    ffi_boundary!(VERSION.as_ptr().cast(), { VERSION.as_ptr().cast() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros_match_the_crate_version() {
        assert_eq!(
            TETHER_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            TETHER_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            TETHER_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
        assert_eq!(
            TETHER_VERSION_NUMBER,
            TETHER_VERSION_MAJOR * 10000 + TETHER_VERSION_MINOR * 100 + TETHER_VERSION_PATCH
        );
    }
}
