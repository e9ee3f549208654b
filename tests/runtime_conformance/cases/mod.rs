//! Every conformance case, grouped by the runtime-spec section it checks
//! (config.md sections, then runtime.md's lifecycle, state and errors).

use crate::harness::{Env, Inside, Runtime};

mod annotations;
mod capabilities;
mod cgroup_removal;
pub mod cgroups;
mod devices;
mod errors;
mod hooks;
mod hostname;
mod lifecycle;
mod mounts;
mod namespaces;
mod process;
mod rlimits;
mod root;
mod seccomp;
mod state;
mod sysctl;
mod user;

/// One check of one spec requirement.
pub struct Case {
    pub section: &'static str,
    pub name: &'static str,
    pub run: Run,
}

pub enum Run {
    /// Checked from inside the container by a script (see harness::PRELUDE).
    Inside(fn(&Env) -> Inside),
    /// Checked from outside through the runtime's command line.
    Outside(fn(&Runtime, &Env) -> Result<(), String>),
}

pub fn inside(section: &'static str, name: &'static str, f: fn(&Env) -> Inside) -> Case {
    Case {
        section,
        name,
        run: Run::Inside(f),
    }
}

pub fn outside(
    section: &'static str,
    name: &'static str,
    f: fn(&Runtime, &Env) -> Result<(), String>,
) -> Case {
    Case {
        section,
        name,
        run: Run::Outside(f),
    }
}

/// All cases, in spec order.
pub fn all() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(root::cases());
    v.extend(mounts::cases());
    v.extend(process::cases());
    v.extend(user::cases());
    v.extend(capabilities::cases());
    v.extend(rlimits::cases());
    v.extend(hostname::cases());
    v.extend(namespaces::cases());
    v.extend(devices::cases());
    for (name, f) in cgroups::inside_cases() {
        v.push(inside("cgroups", name, f));
    }
    v.push(outside(
        "cgroups",
        "cgroup_removed_on_delete",
        cgroup_removal::removed_on_delete,
    ));
    v.extend(sysctl::cases());
    v.extend(seccomp::cases());
    v.extend(hooks::cases());
    v.extend(annotations::cases());
    v.extend(lifecycle::cases());
    v.extend(state::cases());
    v.extend(errors::cases());
    v
}
