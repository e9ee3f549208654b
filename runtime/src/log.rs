//! runc-style logging: --log FILE, --log-format text|json, --debug.
//! Engines such as podman read the runtime's errors from this file.
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

struct Cfg {
    file: Option<PathBuf>,
    json: bool,
    debug: bool,
}

static CFG: OnceLock<Cfg> = OnceLock::new();

/// Sets where and how to log; called once from main.
pub fn init(file: Option<PathBuf>, json: bool, debug: bool) {
    let _ = CFG.set(Cfg { file, json, debug });
}

fn write(level: &str, msg: &str) {
    let Some(cfg) = CFG.get() else {
        if level != "debug" {
            eprintln!("krun-runtime: {level}: {msg}");
        }
        return;
    };
    if level == "debug" && !cfg.debug {
        return;
    }
    let time = crate::state::now_rfc3339();
    let line = if cfg.json {
        format!(
            "{}\n",
            serde_json::json!({"level": level, "msg": msg, "time": time})
        )
    } else {
        format!("time=\"{time}\" level={level} msg={msg:?}\n")
    };
    match &cfg.file {
        Some(p) => {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = f.write_all(line.as_bytes());
            }
        }
        None if level != "error" => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        None => {}
    }
}

/// Logs an error (main also prints it to stderr).
pub fn error(msg: &str) {
    write("error", msg)
}

/// Logs a warning.
pub fn warn(msg: &str) {
    write("warning", msg)
}

/// Logs a debug message (only with --debug).
pub fn debug(msg: &str) {
    write("debug", msg)
}
