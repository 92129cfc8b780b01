//! # tether-ffi: the C ABI of Tether
//!
//! This crate translates between C and [`tether_core`]; it holds no behaviour of its own.
//! The C header `include/tether.h` is generated from these sources by cbindgen
//! (`ffi/gen-header.sh`); its preamble (`ffi/cbindgen.toml`) documents the contract for C
//! users: thread safety, shutdown, callbacks, ownership. `docs/C_API.md` is the user guide.
//!
//! ## How the Rust side keeps the C contract
//!
//! * **No unwinding across the boundary.** Every export's body runs inside [`ffi_boundary!`],
//!   which catches a panic and returns `TETHER_ERR_PANIC` (or NULL / a neutral value). User
//!   callbacks are invoked inside a `catch_unwind` too (see `callbacks.rs`).
//! * **Handles are tokens, not addresses.** `tether_client *` and `tether_config *` are
//!   generation-checked indices into a registry (`registry.rs`); Rust never dereferences them.
//!   A NULL, freed or forged handle gives `TETHER_ERR_NULL_PARAMETER` /
//!   `TETHER_ERR_INVALID_HANDLE` instead of touching freed memory, so a call that races with
//!   `tether_client_free` on another thread is safe (it gets `TETHER_ERR_CLOSED` or
//!   `TETHER_ERR_INVALID_HANDLE`), and a double free is a no-op.
//! * **Raw pointers that are real** (strings, buffers, out-parameters, the callbacks struct)
//!   are read and written only in `util.rs` helpers and a few commented `unsafe` blocks.
//! * **Outputs are written only on success.**

// The C names (`tether_client`, `tether_status`, `TETHER_OK`, ...) are the API.
#![allow(non_camel_case_types)]
// Exports are plain `pub extern "C" fn` (what cbindgen and C callers see). Their pointer
// arguments are checked for NULL and handled by the `unsafe` helpers in `util.rs`, each with a
// SAFETY comment; the caller's side of the contract is written in the header.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

/// Runs an export's body, catching any panic so that it never unwinds into C.
///
/// `ffi_boundary!(fallback, { body })` evaluates to the body's value, or to `fallback` if the
/// body panicked. `return` inside the body returns from the body only.
macro_rules! ffi_boundary {
    ($fallback:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $fallback,
        }
    };
}

mod callbacks;
mod client;
mod config;
mod log;
mod reach;
mod registry;
mod sized;
mod status;
mod util;
mod version;

pub use callbacks::{
    tether_callbacks, tether_message_type, tether_session_reset, tether_state, tether_state_str,
    tether_user_data_free,
};
pub use client::{
    tether_buffer_free, tether_client, tether_client_close, tether_client_delivery_status,
    tether_client_free, tether_client_last_error, tether_client_new, tether_client_poll,
    tether_client_poll_timeout, tether_client_send_binary, tether_client_send_binary_owned,
    tether_client_send_text, tether_client_state, tether_client_stats, tether_client_wait_acked,
    tether_client_wait_closed, tether_delivery, tether_stats,
};
pub use config::*;
pub use log::{tether_log_callback, tether_log_level, tether_set_log_callback};
pub use reach::*;
pub use status::{tether_status, tether_status_str};
pub use version::*;

#[cfg(test)]
mod tests {
    use crate::status::tether_status;

    #[test]
    fn the_boundary_turns_a_panic_into_a_status() {
        fn export(boom: bool) -> tether_status {
            ffi_boundary!(tether_status::TETHER_ERR_PANIC, {
                if boom {
                    panic!("boom");
                }
                tether_status::TETHER_OK
            })
        }
        assert_eq!(export(false), tether_status::TETHER_OK);
        assert_eq!(export(true), tether_status::TETHER_ERR_PANIC);
    }
}
