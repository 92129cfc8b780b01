//! Gives the shared library an ELF soname, so programs linked against an installed
//! `libtether.so` record `libtether.so.<abi>` and keep working across compatible updates.
//! The ABI version follows Cargo's semver rules: `0.MINOR` while the major version is 0,
//! `MAJOR` afterwards (see `ffi/install.sh`, which creates the matching symlinks).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_else(|_| "0".into());
        let abi = if major == "0" {
            format!("0.{minor}")
        } else {
            major
        };
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtether.so.{abi}");
    }
}
