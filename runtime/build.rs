//! Link settings for the `krun-runtime` binary only.
fn main() {
    // Relative relocations packed as RELR (glibc >= 2.36): the loader then
    // reads a few KiB instead of ~350 KiB of .rela.dyn at every start, which
    // is most of a short-lived runtime's resident memory and page faults.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
