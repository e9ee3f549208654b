//! cgroup v2 device access control: the config's device rules compiled to
//! a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup
//! (v2 has no devices.allow file; cgroups-rs does not do this part).
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Context, Result};

#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const MOV32_X: u8 = 0xbc;
const AND32_K: u8 = 0x54;
const RSH32_K: u8 = 0x74;
const JNE_K: u8 = 0x55;
const MOV64_K: u8 = 0xb7;
const EXIT: u8 = 0x95;

/// Builds the program: the rules are checked last to first and the first
/// match decides (so later rules override earlier ones, as in v1); no match denies.
fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut p = vec![
        ins(LDX_W, 2, 1, 0, 0),        // r2 = access_type
        ins(MOV32_X, 3, 2, 0, 0),      // r3 = r2
        ins(AND32_K, 3, 0, 0, 0xffff), // r3 = device type
        ins(MOV32_X, 4, 2, 0, 0),      // r4 = r2
        ins(RSH32_K, 4, 0, 0, 16),     // r4 = access requested
        ins(LDX_W, 5, 1, 4, 0),        // r5 = major
        ins(LDX_W, 6, 1, 8, 0),        // r6 = minor
    ];
    for r in rules.iter().rev() {
        let mut block: Vec<Insn> = Vec::new();
        let typ = match r.typ() {
            Some(LinuxDeviceType::B) => Some(1),
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(2),
            _ => None,
        };
        let mut access = 0;
        for ch in r.access().as_deref().unwrap_or("rwm").chars() {
            access |= match ch {
                'm' => 1,
                'r' => 2,
                'w' => 4,
                _ => 0,
            };
        }
        // Each check jumps past the block's end when it fails; offsets fixed below.
        let mut jumps = Vec::new();
        if let Some(t) = typ {
            jumps.push(block.len());
            block.push(ins(JNE_K, 3, 0, 0, t));
        }
        if access != 7 {
            block.push(ins(MOV32_X, 7, 4, 0, 0));
            block.push(ins(AND32_K, 7, 0, 0, !access & 7));
            jumps.push(block.len());
            block.push(ins(JNE_K, 7, 0, 0, 0));
        }
        if let Some(m) = r.major().filter(|m| *m >= 0) {
            jumps.push(block.len());
            block.push(ins(JNE_K, 5, 0, 0, m as i32));
        }
        if let Some(m) = r.minor().filter(|m| *m >= 0) {
            jumps.push(block.len());
            block.push(ins(JNE_K, 6, 0, 0, m as i32));
        }
        block.push(ins(MOV64_K, 0, 0, 0, r.allow() as i32));
        block.push(ins(EXIT, 0, 0, 0, 0));
        let len = block.len();
        let matches_all = jumps.is_empty();
        for j in jumps {
            block[j].off = (len - j - 1) as i16;
        }
        p.extend(block);
        if matches_all {
            // Nothing after an unconditional rule is reachable (and the
            // verifier refuses unreachable code).
            return p;
        }
    }
    p.push(ins(MOV64_K, 0, 0, 0, 0));
    p.push(ins(EXIT, 0, 0, 0, 0));
    p
}

fn bpf(cmd: libc::c_int, attr: &mut [u64; 16]) -> nix::Result<i64> {
    // SAFETY: attr is a zeroed, 128-byte bpf_attr the kernel reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(r)
}

/// Loads the rules as a device program and attaches it to the cgroup directory.
pub fn attach(cgroup_dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    const BPF_PROG_LOAD: libc::c_int = 5;
    const BPF_PROG_ATTACH: libc::c_int = 8;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u64 = 15;
    const BPF_CGROUP_DEVICE: u64 = 6;
    const BPF_F_ALLOW_MULTI: u64 = 2;
    let insns = program(rules);
    let license = c"Apache";
    let mut attr = [0u64; 16];
    // prog_type (u32) | insn_cnt (u32), insns, license; the rest zero.
    attr[0] = BPF_PROG_TYPE_CGROUP_DEVICE | ((insns.len() as u64) << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    let prog = bpf(BPF_PROG_LOAD, &mut attr).ctx(|| "load cgroup v2 device program")?;
    // SAFETY: the kernel returned a new program fd.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as i32) };
    let dir = nix::fcntl::open(
        cgroup_dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {}", cgroup_dir.display()))?;
    let mut attr = [0u64; 16];
    // target_fd | attach_bpf_fd, attach_type | attach_flags.
    attr[0] = dir.as_raw_fd() as u64 | ((prog.as_raw_fd() as u64) << 32);
    attr[1] = BPF_CGROUP_DEVICE | (BPF_F_ALLOW_MULTI << 32);
    bpf(BPF_PROG_ATTACH, &mut attr)
        .ctx(|| format!("attach device program to {}", cgroup_dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(typ);
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    }

    /// Attaches [deny all, allow c 1:3] to a scratch cgroup in a v2 hierarchy
    /// (pure v2, or the hybrid one at /sys/fs/cgroup/unified) and checks, from a
    /// child in that cgroup, that /dev/null opens and /dev/zero is refused.
    #[test]
    fn bpf_filter_allows_and_denies() {
        let base = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .find(|b| Path::new(b).join("cgroup.subtree_control").exists());
        let Some(base) = base else {
            eprintln!("SKIPPED bpf_filter_allows_and_denies: no cgroup v2 hierarchy");
            return;
        };
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED bpf_filter_allows_and_denies: needs root");
            return;
        }
        let dir = Path::new(base).join(format!("krt-devfilter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = [
            rule(false, None, None, None, "rwm"),
            rule(true, Some(LinuxDeviceType::C), Some(1), Some(3), "rwm"),
        ];
        attach(&dir, &rules).unwrap();
        let procs = std::ffi::CString::new(dir.join("cgroup.procs").to_str().unwrap()).unwrap();
        // SAFETY: the child only makes raw syscalls and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    libc::_exit(10);
                }
                libc::close(fd);
                let null_ok = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) >= 0;
                let zero = libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY);
                let zero_denied = zero < 0 && *libc::__errno_location() == libc::EPERM;
                libc::_exit(if null_ok && zero_denied {
                    0
                } else if null_ok {
                    2
                } else {
                    3
                });
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let _ = std::fs::remove_dir(&dir);
        assert!(libc::WIFEXITED(status), "child died");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "2: /dev/zero allowed, 3: /dev/null denied, 10: join failed"
        );
    }
}
