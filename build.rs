//! Build script: gives the agent's binaries a GNU build ID.
//!
//! Distributions' debug packages are keyed by it (dh_strip's -dbgsym,
//! rpm's find-debuginfo, debuginfod). GCC on Debian and Fedora asks the
//! linker for one by default, but the portable release build links with
//! zig (cargo-zigbuild, against glibc 2.28's symbols), whose linker does
//! not. Asking for it here holds for every build, so the native and the
//! portable builds use the same flags.

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--build-id=sha1");
    println!("cargo:rerun-if-changed=build.rs");
}
