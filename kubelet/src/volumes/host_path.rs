//! hostPath type checks, with the kubelet's messages
//! (pkg/volume/hostpath checkType): the path is stat'ed (symlinks
//! followed, as the kubelet does), created for the *OrCreate types, and a
//! missing path of type "" is made a directory, as containerd makes a
//! missing bind source.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

fn make_dir(p: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(p)
        .map_err(|e| format!("mkdir {}: {e}", p.display()))
}

/// Checks (and for the *OrCreate types makes) `path` as `typ` asks.
pub fn check(path: &Path, typ: &str) -> Result<(), String> {
    let meta = match fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("stat {}: {e}", path.display())),
    };
    let shown = path.display();
    let not = |what: &str| format!("hostPath type check failed: {shown} is not {what}");
    let ft = meta.as_ref().map(|m| m.file_type());
    match typ {
        "" => {
            if meta.is_none() {
                make_dir(path)?;
            }
        }
        "DirectoryOrCreate" if meta.is_none() => make_dir(path)?,
        "DirectoryOrCreate" | "Directory" => {
            if !ft.is_some_and(|t| t.is_dir()) {
                return Err(not("a directory"));
            }
        }
        "FileOrCreate" if meta.is_none() => {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .mode(0o644)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| format!("open {shown}: {e}"))?;
        }
        "FileOrCreate" | "File" => {
            if !ft.is_some_and(|t| t.is_file()) {
                return Err(not("a file"));
            }
        }
        "Socket" => {
            if !ft.is_some_and(|t| t.is_socket()) {
                return Err(not("a socket file"));
            }
        }
        "CharDevice" => {
            if !ft.is_some_and(|t| t.is_char_device()) {
                return Err(not("a character device"));
            }
        }
        "BlockDevice" => {
            if !ft.is_some_and(|t| t.is_block_device()) {
                return Err(not("a block device"));
            }
        }
        other => return Err(format!("{other} is an invalid volume type")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_as_the_kubelet_checks_them() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("dir");
        let file = d.path().join("file");
        fs::create_dir(&dir).unwrap();
        fs::write(&file, "x").unwrap();
        assert!(check(&dir, "Directory").is_ok());
        assert_eq!(
            check(&file, "Directory").unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a directory",
                file.display()
            )
        );
        assert!(check(&file, "File").is_ok());
        assert!(check(&dir, "File").unwrap_err().ends_with("is not a file"));
        assert!(check(&d.path().join("none"), "File")
            .unwrap_err()
            .ends_with("is not a file"));
        assert!(check(Path::new("/dev/null"), "CharDevice").is_ok());
        assert!(check(&file, "Socket")
            .unwrap_err()
            .ends_with("is not a socket file"));
        assert!(check(&file, "BlockDevice")
            .unwrap_err()
            .ends_with("is not a block device"));
        assert!(check(&file, "CharDevice")
            .unwrap_err()
            .ends_with("is not a character device"));

        let made = d.path().join("a/b");
        check(&made, "DirectoryOrCreate").unwrap();
        assert!(made.is_dir());
        let f = d.path().join("new-file");
        check(&f, "FileOrCreate").unwrap();
        assert!(f.is_file());
        assert!(
            check(&dir, "FileOrCreate").is_err(),
            "exists as a directory"
        );
        let plain = d.path().join("plain");
        check(&plain, "").unwrap();
        assert!(plain.is_dir());
    }
}
