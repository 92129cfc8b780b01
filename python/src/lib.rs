//! Python bindings for Tether (work in progress: see the Python issue).
