//! Forwarding past other engines' iptables firewalls.
//!
//! dockerd sets the filter FORWARD policy to DROP (through iptables-nft or
//! iptables-legacy, whichever `iptables` is). In netfilter every base chain
//! at a hook gives its own verdict and a drop anywhere is final, so an accept
//! in netplug's nft table cannot undo that drop: the accept has to be in that
//! FORWARD chain. As flannel does, netplug keeps a chain of its own there,
//! `KRUN-FWD-<bridge>`, and appends one jump to it at the end of FORWARD.
//! Appending means every rule before it still decides first (DOCKER-USER,
//! docker's isolation of its own bridges, an admin's final REJECT); only
//! traffic that would fall through to the policy is accepted, and only pod
//! traffic. A backend whose filter table does not exist is left alone (no
//! table, module or chain is created for it).
use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Nft,
    Legacy,
}

impl Backend {
    pub(crate) const ALL: [Backend; 2] = [Backend::Nft, Backend::Legacy];

    fn bin(self) -> &'static str {
        match self {
            Backend::Nft => "iptables-nft",
            Backend::Legacy => "iptables-legacy",
        }
    }
}

pub(crate) struct Forward<'a> {
    pub bridge: &'a str,
    pub subnet: Ipv4Net,
    pub cluster: Ipv4Net,
    /// netplug's nft table, named in the jump's comment.
    pub table: &'a str,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs an iptables binary; `None` when it is not installed.
fn run(bin: &str, args: &[&str], input: Option<&str>) -> Result<Option<Out>> {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Firewall {
                step: "run",
                detail: format!("{bin}: {e}"),
            })
        }
    };
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(data.as_bytes())
            .map_err(|e| Error::Firewall {
                step: "run",
                detail: format!("writing to {bin}: {e}"),
            })?;
    }
    let out = child.wait_with_output().map_err(|e| Error::Firewall {
        step: "run",
        detail: format!("{bin}: {e}"),
    })?;
    Ok(Some(Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }))
}

/// Whether the backend's filter table holds a FORWARD chain. Checked
/// without the iptables binaries (which would create the table or load the
/// module) and without a process, so attach can afford it every time. The
/// calling thread's namespace counts (thread-self, and the socket's).
fn filter_in_use(b: Backend) -> bool {
    match b {
        Backend::Legacy => std::fs::read_to_string("/proc/thread-self/net/ip_tables_names")
            .map(|s| s.lines().any(|l| l.trim() == "filter"))
            .unwrap_or(false),
        // iptables-nft keeps table "filter" with upper-case chain names
        Backend::Nft => crate::nfnl::chain_exists("filter", "FORWARD"),
    }
}

/// Which backends have a filter table now, e.g. "nft legacy": part of
/// the ready-marker, so a firewall that appears after setup (dockerd
/// started later) gets krun's chain at the next attach.
pub(crate) fn in_use_now() -> String {
    let names: Vec<&str> = Backend::ALL
        .into_iter()
        .filter(|b| filter_in_use(*b))
        .map(|b| match b {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        })
        .collect();
    names.join(" ")
}

impl Forward<'_> {
    pub(crate) fn chain(&self) -> String {
        // bridge names are at most 15 bytes: 24 of iptables' 28
        format!("KRUN-FWD-{}", self.bridge)
    }

    fn comment(&self) -> String {
        format!("krun netplug {}", self.table)
    }

    fn jump_spec(&self) -> Vec<String> {
        [
            "FORWARD",
            "-m",
            "comment",
            "--comment",
            &self.comment(),
            "-j",
            &self.chain(),
        ]
        .map(String::from)
        .to_vec()
    }

    /// The chain's rules, in iptables-restore form.
    fn restore_input(&self) -> String {
        let net = |n: Ipv4Net| format!("{}/{}", n.network(), n.prefix);
        let (c, br, sub, cl) = (
            self.chain(),
            self.bridge,
            net(self.subnet),
            net(self.cluster),
        );
        format!(
            "*filter\n\
             :{c} - [0:0]\n\
             -A {c} -o {br} -d {sub} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             -A {c} -o {br} -d {sub} -m conntrack --ctstate DNAT -j ACCEPT\n\
             -A {c} -s {cl} -o {br} -d {sub} -j ACCEPT\n\
             -A {c} -i {br} -s {sub} -j ACCEPT\n\
             COMMIT\n"
        )
    }

    /// Installs the chain and its jump in every backend whose filter table
    /// exists. Returns the backends it was installed in. Idempotent: the
    /// chain is refilled (iptables-restore --noflush flushes a chain it
    /// declares) and the jump added only when missing.
    pub(crate) fn ensure(&self) -> Result<Vec<Backend>> {
        let mut done = Vec::new();
        for b in Backend::ALL {
            if !filter_in_use(b) {
                continue;
            }
            let restore = format!("{}-restore", b.bin());
            let Some(out) = run(&restore, &["-w", "--noflush"], Some(&self.restore_input()))?
            else {
                // the table exists but its tool is not installed: nothing can be done
                continue;
            };
            if !out.ok && out.stderr.contains("incompatible") {
                // a native nft table named like iptables' own, which iptables-nft
                // refuses to touch: not an iptables firewall, leave it alone
                continue;
            }
            if !out.ok {
                return Err(Error::Firewall {
                    step: "fill forward chain",
                    detail: format!("{restore}: {}", out.stderr),
                });
            }
            let spec = self.jump_spec();
            let check: Vec<&str> = ["-w", "-C"]
                .into_iter()
                .chain(spec.iter().map(String::as_str))
                .collect();
            let present = run(b.bin(), &check, None)?.is_some_and(|o| o.ok);
            if !present {
                let add: Vec<&str> = ["-w", "-A"]
                    .into_iter()
                    .chain(spec.iter().map(String::as_str))
                    .collect();
                match run(b.bin(), &add, None)? {
                    Some(o) if o.ok => {}
                    Some(o) => {
                        return Err(Error::Firewall {
                            step: "add jump to forward chain",
                            detail: format!("{}: {}", b.bin(), o.stderr),
                        })
                    }
                    None => continue,
                }
            }
            done.push(b);
        }
        Ok(done)
    }

    /// Fails when a backend with a filter table lacks netplug's jump (a
    /// firewall reload flushed FORWARD, say): pods would be cut off.
    pub(crate) fn verify(&self) -> Result<()> {
        for b in Backend::ALL {
            if !filter_in_use(b) {
                continue;
            }
            let spec = self.jump_spec();
            let check: Vec<&str> = ["-w", "-C"]
                .into_iter()
                .chain(spec.iter().map(String::as_str))
                .collect();
            if let Some(o) = run(b.bin(), &check, None)? {
                if !o.ok {
                    return Err(Error::Firewall {
                        step: "check",
                        detail: format!(
                            "{}: filter FORWARD has no jump to {} (run `krun network setup`)",
                            b.bin(),
                            self.chain()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the backend has netplug's chain.
    fn has_chain(&self, b: Backend) -> Result<bool> {
        if !filter_in_use(b) {
            return Ok(false);
        }
        Ok(run(b.bin(), &["-w", "-S", &self.chain()], None)?.is_some_and(|o| o.ok))
    }

    /// Removes every jump to the chain and the chain, wherever it exists.
    /// Returns one line per backend it was removed from.
    pub(crate) fn remove(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for b in Backend::ALL {
            if !self.has_chain(b)? {
                continue;
            }
            let chain = self.chain();
            // jumps from FORWARD, whatever their comment (an older or
            // hand-made copy would otherwise keep the chain referenced)
            let listing = run(b.bin(), &["-w", "-S", "FORWARD"], None)?
                .map(|o| o.stdout)
                .unwrap_or_default();
            for line in listing.lines() {
                if !line.ends_with(&format!("-j {chain}")) {
                    continue;
                }
                let Some(rule) = line.strip_prefix("-A ") else {
                    continue;
                };
                let mut args = vec!["-w".to_string(), "-D".to_string()];
                args.extend(split_rule(rule));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                self.must(b, &args, "delete jump")?;
            }
            self.must(b, &["-w", "-F", &chain], "flush forward chain")?;
            self.must(b, &["-w", "-X", &chain], "delete forward chain")?;
            removed.push(format!("{} chain filter {chain}", b.bin()));
        }
        Ok(removed)
    }

    fn must(&self, b: Backend, args: &[&str], step: &'static str) -> Result<()> {
        match run(b.bin(), args, None)? {
            Some(o) if o.ok => Ok(()),
            Some(o) => Err(Error::Firewall {
                step,
                detail: format!("{}: {}", b.bin(), o.stderr),
            }),
            None => Err(Error::Firewall {
                step,
                detail: format!("{} is not installed", b.bin()),
            }),
        }
    }
}

/// Splits one `iptables -S` rule into arguments (quoted comments stay whole).
fn split_rule(rule: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in rule.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    args.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            _ => {
                cur.push(ch);
                any = true;
            }
        }
    }
    if any {
        args.push(cur);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_quoted_comment_whole() {
        assert_eq!(
            split_rule(r#"FORWARD -m comment --comment "krun netplug krun" -j KRUN-FWD-krun0"#),
            [
                "FORWARD",
                "-m",
                "comment",
                "--comment",
                "krun netplug krun",
                "-j",
                "KRUN-FWD-krun0"
            ]
        );
    }

    #[test]
    fn rules_accept_only_pod_traffic() {
        let f = Forward {
            bridge: "krun0",
            subnet: "10.244.0.0/24".parse().unwrap(),
            cluster: "10.244.0.0/16".parse().unwrap(),
            table: "krun",
        };
        let r = f.restore_input();
        assert!(r.starts_with("*filter\n:KRUN-FWD-krun0 - [0:0]\n"), "{r}");
        assert!(r.contains("-A KRUN-FWD-krun0 -i krun0 -s 10.244.0.0/24 -j ACCEPT\n"));
        assert!(r.contains("-o krun0 -d 10.244.0.0/24 -m conntrack --ctstate DNAT -j ACCEPT"));
        // every accept names the bridge: nothing else on the node is opened
        for l in r.lines().filter(|l| l.starts_with("-A ")) {
            assert!(l.contains(" krun0 "), "{l}");
        }
        assert!(r.ends_with("COMMIT\n"));
    }
}
