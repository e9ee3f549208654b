//! The example manifests of the README load as the API server would take them.
use krun_kubelet::pods;
use std::path::PathBuf;

#[test]
fn every_example_manifest_loads_and_publishes_port_8080() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let m =
            pods::load(std::slice::from_ref(&p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(m.pods.len(), 1, "{}", p.display());
        let c = &m.pods[0].0.spec.as_ref().unwrap().containers[0];
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!((port.container_port, port.host_port), (5000, Some(8080)));
        n += 1;
    }
    assert_eq!(n, 2);
}
