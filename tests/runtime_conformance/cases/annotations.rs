//! config.md "Annotations": carried into the state.

use super::{outside, Case};
use crate::config::{base, put};
use crate::harness::{write_bundle, Cleanup, Env, Expect, Inside, Runtime};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![outside("annotations", "annotations_in_state", in_state)]
}

/// The state's annotations are the config's.
fn in_state(rt: &Runtime, env: &Env) -> Result<(), String> {
    let ann =
        json!({"org.krun.conformance/key": "value with spaces", "org.krun.conformance.empty": ""});
    let mut c = base(&env.rootfs);
    put(&mut c, "/annotations", ann.clone());
    let bundle = write_bundle(
        env,
        &Inside {
            config: c,
            script: "sleep 5".into(),
            expect: Expect::Pass,
        },
    );
    let b = bundle.display().to_string();
    let o = rt.cmd(&["create", "--bundle", &b, &env.id]);
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    if !o.ok() {
        return Err(format!("create failed: {}", o.describe()));
    }
    let st = rt.state(&env.id)?;
    if st["annotations"] != ann {
        return Err(format!(
            "state annotations {} differ from the config's {ann}",
            st["annotations"]
        ));
    }
    Ok(())
}
