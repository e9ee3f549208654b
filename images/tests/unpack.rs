//! Unpacker tests on tars built here, hostile ones included. Needs root
//! (ownership, device nodes, trusted.* xattrs); skips otherwise.
use krun_images::unpack::{unpack_layer, Compression, Limits};
use krun_images::Digest;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

fn root() -> bool {
    // SAFETY: no preconditions.
    let r = unsafe { libc::geteuid() } == 0;
    if !r {
        eprintln!("SKIPPED: needs root");
    }
    r
}

/// A tar writer that can also write the names a well-behaved builder refuses.
struct T(tar::Builder<Vec<u8>>);

impl T {
    fn new() -> Self {
        T(tar::Builder::new(Vec::new()))
    }
    fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }
    fn raw(mut self, mut h: tar::Header, data: &[u8]) -> Self {
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn dir(self, name: &str, mode: u32) -> Self {
        let h = Self::header(name, tar::EntryType::Directory, mode, 0);
        self.raw(h, &[])
    }
    fn file(self, name: &str, mode: u32, data: &[u8]) -> Self {
        let h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64);
        self.raw(h, data)
    }
    fn owned_file(self, name: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> Self {
        let mut h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.raw(h, data)
    }
    fn link(self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = Self::header(name, kind, 0o777, 0);
        let l = &mut h.as_old_mut().linkname;
        l.fill(0);
        l[..target.len()].copy_from_slice(target.as_bytes());
        self.raw(h, &[])
    }
    fn node(self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> Self {
        let mut h = Self::header(name, kind, 0o644, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, &[])
    }
    fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = format!(" {k}=").len() + v.len() + 1;
            let mut len = rest + 1;
            while format!("{len}").len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let mut h = Self::header(
            "PaxHeader",
            tar::EntryType::XHeader,
            0o644,
            body.len() as u64,
        );
        h.set_cksum();
        self.0.append(&h, body.as_slice()).unwrap();
        self
    }
    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A sandbox: `outside` holds a canary; the layer goes in `layer`.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("layer")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/canary"), b"keep").unwrap();
        Sandbox { dir }
    }
    fn layer(&self) -> std::path::PathBuf {
        self.dir.path().join("layer")
    }
    fn unpack(&self, tar: &[u8]) -> krun_images::Result<krun_images::unpack::Unpacked> {
        unpack_layer(
            tar,
            Compression::None,
            &self.layer(),
            &Limits::default(),
            "test",
        )
    }
    /// Everything outside the layer dir is exactly what we put there.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["layer", "outside"]);
        let out: Vec<_> = std::fs::read_dir(self.dir.path().join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(out, ["canary"]);
        assert_eq!(
            std::fs::read(self.dir.path().join("outside/canary")).unwrap(),
            b"keep"
        );
    }
}

fn refused(tar: Vec<u8>, want: &str) {
    let sb = Sandbox::new();
    let err = sb
        .unpack(&tar)
        .expect_err("hostile layer accepted")
        .to_string();
    assert!(err.contains(want), "error {err:?} lacks {want:?}");
    sb.assert_outside_untouched();
}

#[test]
fn unpacks_every_kind_of_entry_in_overlay_format() {
    if !root() {
        return;
    }
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let tar = T::new()
        .dir("./", 0o755)
        .dir("etc/", 0o755)
        .file("etc/hosts", 0o644, b"127.0.0.1 localhost\n")
        .owned_file("home/user/notes", 0o600, 1000, 1001, b"mine")
        .file("bin/su", 0o4755, b"#!setuid")
        .file("bin/wall", 0o2755, b"#!setgid")
        .dir("tmp/", 0o1777)
        .file("empty", 0o644, b"")
        .file("big", 0o644, &big)
        .link(tar::EntryType::Symlink, "bin/sh", "/bin/busybox")
        .link(tar::EntryType::Symlink, "rel", "../etc/hosts")
        .link(tar::EntryType::Link, "etc/hosts.hard", "etc/hosts")
        .node("dev/null", tar::EntryType::Char, 1, 3)
        .node("dev/loop9", tar::EntryType::Block, 7, 9)
        .node("run/fifo", tar::EntryType::Fifo, 0, 0)
        .file(".wh.gone", 0o644, b"")
        .dir("var/", 0o755)
        .file("var/.wh..wh..opq", 0o644, b"")
        .pax(&[
            ("SCHILY.xattr.user.note", b"hello"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ])
        .file("xattr-file", 0o644, b"x")
        .finish();
    let sb = Sandbox::new();
    let out = sb.unpack(&tar).unwrap();
    assert_eq!(out.diff_id, Digest::of(&tar));
    assert_eq!(out.size, tar.len() as u64);
    let l = sb.layer();
    let md = |p: &str| std::fs::symlink_metadata(l.join(p)).unwrap();
    assert_eq!(
        std::fs::read(l.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
    assert_eq!(md("etc/hosts").mtime(), 1_600_000_000);
    let n = md("home/user/notes");
    assert_eq!((n.uid(), n.gid(), n.mode() & 0o7777), (1000, 1001, 0o600));
    assert_eq!(md("bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(md("bin/wall").mode() & 0o7777, 0o2755);
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(md("tmp").mtime(), 1_600_000_000);
    assert_eq!(md("empty").len(), 0);
    assert_eq!(std::fs::read(l.join("big")).unwrap(), big);
    assert_eq!(
        std::fs::read_link(l.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        std::fs::read_link(l.join("rel")).unwrap(),
        Path::new("../etc/hosts")
    );
    assert_eq!(md("etc/hosts.hard").ino(), md("etc/hosts").ino());
    assert!(md("dev/null").file_type().is_char_device());
    assert_eq!(md("dev/null").rdev(), libc::makedev(1, 3));
    assert!(md("dev/loop9").file_type().is_block_device());
    assert!(md("run/fifo").file_type().is_fifo());
    let wh = md("gone");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    assert_eq!(
        xattr::get(l.join("var"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr::get(l.join("xattr-file"), "user.note")
            .unwrap()
            .as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        xattr::get(l.join("xattr-file"), "trusted.overlay.redirect").unwrap(),
        None
    );
    assert!(md("home").is_dir(), "implicit parent created");
    sb.assert_outside_untouched();
}

#[test]
fn gzip_and_zstd_layers_give_the_diff_id_of_the_tar() {
    if !root() {
        return;
    }
    let tar = T::new()
        .file("a", 0o644, b"aaaa")
        .file("d/b", 0o755, b"bb")
        .finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(tar.as_slice(), 3).unwrap();
    for (blob, c) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
        let sb = Sandbox::new();
        let out = unpack_layer(blob.as_slice(), c, &sb.layer(), &Limits::default(), "t").unwrap();
        assert_eq!(out.diff_id, Digest::of(&tar));
        assert_eq!(std::fs::read(sb.layer().join("d/b")).unwrap(), b"bb");
        assert_eq!(
            std::fs::metadata(sb.layer().join("d/b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
    }
}

#[test]
fn refuses_dotdot_and_absolute_names() {
    if !root() {
        return;
    }
    refused(
        T::new().file("../outside/pwned", 0o644, b"x").finish(),
        "..",
    );
    refused(
        T::new().file("a/../../outside/pwned", 0o644, b"x").finish(),
        "..",
    );
    refused(
        T::new().file("/outside/pwned", 0o644, b"x").finish(),
        "absolute",
    );
}

#[test]
fn refuses_writing_through_symlinks() {
    if !root() {
        return;
    }
    let sb = Sandbox::new();
    let outside = sb.dir.path().join("outside");
    let escape = T::new()
        .link(tar::EntryType::Symlink, "esc", outside.to_str().unwrap())
        .file("esc/pwned", 0o644, b"x")
        .finish();
    let err = sb.unpack(&escape).unwrap_err().to_string();
    assert!(err.contains("not a directory"), "{err}");
    sb.assert_outside_untouched();
    // Same through a relative link, a dir made of a link, and a nested one.
    refused(
        T::new()
            .link(tar::EntryType::Symlink, "up", "../outside")
            .dir("up/sub/", 0o755)
            .finish(),
        "not a directory",
    );
    refused(
        T::new()
            .dir("d/", 0o755)
            .link(tar::EntryType::Symlink, "d/l", "../../outside")
            .file("d/l/pwned", 0o644, b"x")
            .finish(),
        "not a directory",
    );
}

#[test]
fn refuses_hardlinks_leaving_the_layer() {
    if !root() {
        return;
    }
    refused(
        T::new()
            .link(tar::EntryType::Link, "h", "../outside/canary")
            .finish(),
        "..",
    );
    refused(
        T::new()
            .link(tar::EntryType::Link, "h", "/etc/passwd")
            .finish(),
        "absolute",
    );
    refused(
        T::new()
            .link(tar::EntryType::Link, "h", "etc/passwd")
            .finish(),
        "not an earlier file",
    );
    // A hardlink through a symlink of the layer to something outside.
    refused(
        T::new()
            .link(tar::EntryType::Symlink, "s", "/")
            .link(tar::EntryType::Link, "h", "s/etc/passwd")
            .finish(),
        "not an earlier file",
    );
}

#[test]
fn refuses_whiteouts_outside_their_directory() {
    if !root() {
        return;
    }
    refused(T::new().file("a/.wh...", 0o644, b"").finish(), "whiteout");
    refused(T::new().file("../.wh.outside", 0o644, b"").finish(), "..");
}

#[test]
fn stops_bombs_at_the_limits() {
    if !root() {
        return;
    }
    let zeros = vec![0u8; 4 << 20];
    let tar = T::new().file("z", 0o644, &zeros).finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let sb = Sandbox::new();
    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 10,
        max_ratio: 0,
        ratio_after: 0,
    };
    let err = unpack_layer(gz.as_slice(), Compression::Gzip, &sb.layer(), &limits, "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("exceeds the limit"), "{err}");
    let mut many = T::new();
    for i in 0..20 {
        many = many.file(&format!("f{i}"), 0o644, b"");
    }
    let sb = Sandbox::new();
    let err = unpack_layer(
        many.finish().as_slice(),
        Compression::None,
        &sb.layer(),
        &limits,
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("more than 10 entries"), "{err}");
    // Zeros compress ~1000:1: the ratio limit stops them.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut h = tar::Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_size(16 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    gz.write_all(h.as_bytes()).unwrap();
    let mb = vec![0u8; 1 << 20];
    for _ in 0..16 {
        gz.write_all(&mb).unwrap();
    }
    let bomb = gz.finish().unwrap();
    let sb = Sandbox::new();
    let limits = Limits {
        ratio_after: 4 << 20,
        ..Limits::default()
    };
    let err = unpack_layer(
        bomb.as_slice(),
        Compression::Gzip,
        &sb.layer(),
        &limits,
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("decompression bomb"), "{err}");
}

#[test]
fn later_entries_replace_earlier_ones() {
    if !root() {
        return;
    }
    let tar = T::new()
        .file("x", 0o644, b"old")
        .file("x", 0o600, b"new")
        .dir("d/", 0o755)
        .file("d/inner", 0o644, b"i")
        .file("d", 0o644, b"now a file")
        .file("gone", 0o644, b"g")
        .file(".wh.gone", 0o644, b"")
        .finish();
    let sb = Sandbox::new();
    sb.unpack(&tar).unwrap();
    let l = sb.layer();
    assert_eq!(std::fs::read(l.join("x")).unwrap(), b"new");
    assert_eq!(std::fs::read(l.join("d")).unwrap(), b"now a file");
    assert!(std::fs::symlink_metadata(l.join("gone"))
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn truncated_layer_is_an_error() {
    if !root() {
        return;
    }
    let tar = T::new().file("a", 0o644, &[7u8; 10_000]).finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let sb = Sandbox::new();
    let r = unpack_layer(
        &gz[..gz.len() / 2],
        Compression::Gzip,
        &sb.layer(),
        &Limits::default(),
        "t",
    );
    assert!(r.is_err());
}
