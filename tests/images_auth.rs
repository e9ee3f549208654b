//! Issue 4, done-when 4: the private registry (HTTPS, basic auth) works with
//! credentials from a docker config.json and with `krun login`, and fails
//! with a clear error without them.
mod common;
mod images_util;

use images_util::{stderr, Root};
use std::io::Write;
use std::process::Stdio;

fn private() -> String {
    format!("{}/private/busybox:latest", common::PRIVATE_REGISTRY)
}

/// Trust the fixture CA through registries.toml.
fn trust_ca(root: &Root) {
    let ca = common::fixtures_dir().join("certs/ca.crt");
    std::fs::write(
        root.dir.join("registries.toml"),
        format!(
            "[[registry]]\nlocation = \"{}\"\nca = [\"{}\"]\n",
            common::PRIVATE_REGISTRY,
            ca.display()
        ),
    )
    .unwrap();
}

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn private_registry_without_credentials_is_a_clear_401() {
    if !common::require_root("private_registry_without_credentials_is_a_clear_401") {
        return;
    }
    let root = Root::new("krun-img-auth");
    trust_ca(&root);
    let out = root.pull(&private());
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err:?}");
    assert!(err.contains("registry 127.0.0.1:5001"), "{err}");
    assert!(
        err.contains("127.0.0.1:5001/private/busybox:latest"),
        "{err}"
    );
    assert!(err.contains("401 Unauthorized"), "{err}");
    assert!(err.contains("krun login 127.0.0.1:5001"), "{err}");
}

#[test]
fn private_registry_with_docker_config_json() {
    if !common::require_root("private_registry_with_docker_config_json") {
        return;
    }
    let root = Root::new("krun-img-auth");
    trust_ca(&root);
    let docker = root.dir.join("dockercfg");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"{}\"}}}}}}",
            common::PRIVATE_REGISTRY,
            b64(&format!(
                "{}:{}",
                common::PRIVATE_USER,
                common::PRIVATE_PASS
            ))
        ),
    )
    .unwrap();
    let out = common::run(
        root.krun()
            .env_remove("REGISTRY_AUTH_FILE")
            .env("DOCKER_CONFIG", &docker)
            .args(["pull", &private()]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // ~/.docker/config.json (HOME) works the same.
    let root2 = Root::new("krun-img-auth");
    trust_ca(&root2);
    std::fs::create_dir_all(root2.dir.join(".docker")).unwrap();
    std::fs::copy(
        docker.join("config.json"),
        root2.dir.join(".docker/config.json"),
    )
    .unwrap();
    let out = common::run(
        root2
            .krun()
            .env_remove("REGISTRY_AUTH_FILE")
            .args(["pull", &private()]),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Wrong password: rejected, one clear line.
    std::fs::write(
        docker.join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"{}\"}}}}}}",
            common::PRIVATE_REGISTRY,
            b64(&format!("{}:wrong", common::PRIVATE_USER))
        ),
    )
    .unwrap();
    let root3 = Root::new("krun-img-auth");
    trust_ca(&root3);
    let out = common::run(
        root3
            .krun()
            .env_remove("REGISTRY_AUTH_FILE")
            .env("DOCKER_CONFIG", &docker)
            .args(["pull", &private()]),
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("401 Unauthorized") && err.contains("rejected"),
        "{err}"
    );
}

#[test]
fn private_registry_with_krun_login_and_logout() {
    if !common::require_root("private_registry_with_krun_login_and_logout") {
        return;
    }
    let root = Root::new("krun-img-auth");
    trust_ca(&root);
    let login = |pass: &str| {
        let mut child = root
            .krun()
            .args([
                "login",
                "-u",
                common::PRIVATE_USER,
                "--password-stdin",
                common::PRIVATE_REGISTRY,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pass}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let bad = login("not-the-password");
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("rejected"), "{}", stderr(&bad));
    assert!(
        !root.dir.join("auth.json").exists(),
        "rejected credentials were saved"
    );

    let ok = login(common::PRIVATE_PASS);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let saved = std::fs::read_to_string(root.dir.join("auth.json")).unwrap();
    assert!(saved.contains(common::PRIVATE_REGISTRY), "{saved}");
    let out = root.pull(&private());
    assert!(out.status.success(), "{}", stderr(&out));

    common::run_ok(root.krun().args(["logout", common::PRIVATE_REGISTRY]));
    common::run_ok(root.krun().args(["rmi", &private()]));
    let out = root.pull(&private());
    assert!(!out.status.success(), "pull still works after logout");
    assert!(
        stderr(&out).contains("401 Unauthorized"),
        "{}",
        stderr(&out)
    );
}
