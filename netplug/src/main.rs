//! `krun-cni`: krun's bridge network as a CNI 1.1 plugin.
use std::io::{Read, Write};

fn main() {
    let env = krun_netplug::cni::CniEnv::from_env(|k| std::env::var(k).ok());
    if env.command.is_empty()
        && (std::env::args().len() > 1 || std::io::IsTerminal::is_terminal(&std::io::stdin()))
    {
        println!(
            "krun-cni {}: a CNI plugin, driven by CNI_COMMAND and a network config on stdin\nCNI protocol versions supported: {}",
            env!("CARGO_PKG_VERSION"),
            krun_netplug::cni::SUPPORTED_VERSIONS.join(", ")
        );
        return;
    }
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let version = serde_json::from_slice::<serde_json::Value>(&stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(String::from))
        .unwrap_or_else(|| "1.1.0".into());
    let res = match read {
        Ok(_) => krun_netplug::cni::run(&env, &stdin),
        Err(e) => Err(krun_netplug::cni::CniError {
            code: krun_netplug::cni::ERR_DECODE,
            msg: "cannot read stdin".into(),
            details: e.to_string(),
        }),
    };
    let mut out = std::io::stdout().lock();
    match res {
        Ok(Some(v)) => {
            let _ = writeln!(out, "{v}");
        }
        Ok(None) => {}
        Err(e) => {
            let _ = writeln!(out, "{}", e.to_json(&version));
            let _ = out.flush();
            std::process::exit(1);
        }
    }
}
