//! C ABI for Tether (work in progress: see the C ABI issue).
