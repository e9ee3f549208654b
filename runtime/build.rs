//! Link settings for the `krun-runtime` binary only (not the library or
//! its tests).
//!
//! krun-runtime runs for every container and its peak resident memory is
//! mostly mapped code: glibc's shared libc alone is ~1 MiB resident (its
//! IFUNC resolvers and the loader's relocation work touch most of it). So
//! the binary is a static PIE: only the libc code it calls is linked, no
//! loader runs, and ASLR stays. rustc cannot be asked for `+crt-static` per
//! binary without `--target`, so the libraries it names (-lc, -lgcc_s, …,
//! and libseccomp) are resolved from a directory of static archives
//! searched first, and `-static-pie` makes the link static.
use std::path::{Path, PathBuf};

fn find(name: &str, dirs: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KRUN_RUNTIME_DYNAMIC");
    // Relative relocations packed as RELR: the start-up relocation pass
    // reads a few KiB instead of ~350 KiB of .rela.dyn.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu")
        || std::env::var("KRUN_RUNTIME_DYNAMIC").is_ok()
    {
        return;
    }
    let libdirs = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"];
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let dir = out.join("static-libs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create static-libs");
    for lib in ["c", "m", "rt", "pthread", "dl", "util", "seccomp"] {
        let name = format!("lib{lib}.a");
        match find(&name, &libdirs) {
            Some(p) => std::os::unix::fs::symlink(&p, dir.join(&name)).expect("symlink"),
            None => {
                // Without the archives (libc6-dev, libseccomp-dev) the binary stays dynamic.
                println!("cargo:warning=krun-runtime: {name} not found; linking dynamically");
                return;
            }
        }
    }
    // std asks for the shared unwinder; static links use libgcc_eh (+ libgcc).
    std::fs::write(dir.join("libgcc_s.a"), "INPUT(-lgcc_eh -lgcc)\n").expect("write libgcc_s.a");
    println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
    println!("cargo:rustc-link-arg-bins=-static-pie");
}
