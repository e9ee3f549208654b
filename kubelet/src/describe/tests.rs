use super::*;
use crate::events::Event;
use crate::manifest::{parse_str, Object};
use crate::status::{pod_status, ContainerRecord, PodFacts, State, Terminated, Waiting};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, tier: front}
  annotations: {team: core}
spec:
  nodeName: node-1
  initContainers:
  - {name: setup, image: busybox, command: [sh, -c, 'echo ready']}
  containers:
  - name: app
    image: 127.0.0.1:5000/flask-app:latest
    ports: [{containerPort: 5000, hostPort: 8080}]
    resources: {limits: {memory: 64Mi}}
    livenessProbe: {httpGet: {port: 5000, path: /healthz}}
    env:
    - {name: MODE, value: prod}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    volumeMounts: [{name: cache, mountPath: /cache}]
  volumes:
  - {name: cache, emptyDir: {}}
";

#[test]
fn describe_reads_like_kubectl() {
    let mut pod = match parse_str("p.yaml", POD).unwrap().remove(0).object {
        Object::Pod(p) => *p,
        other => panic!("{}", other.kind()),
    };
    pod.metadata.uid = Some("u-1".into());
    pod.metadata.creation_timestamp = Some(Time(ts("2026-01-01T00:00:00Z")));
    let spec = pod.spec.clone().unwrap();
    let mut init = ContainerRecord::new(
        &spec.init_containers.unwrap()[0],
        Waiting::ContainerCreating,
    );
    init.state = State::Terminated(Terminated {
        exit_code: 0,
        oom_killed: false,
        started_at: Some(ts("2026-01-01T00:00:01Z")),
        finished_at: ts("2026-01-01T00:00:02Z"),
        message: None,
        container_id: Some("krun://setup-1".into()),
        status_unknown: false,
    });
    init.container_id = Some("krun://setup-1".into());
    init.image_id = "127.0.0.1:5000/library/busybox@sha256:aaaa".into();
    let mut app = ContainerRecord::new(&spec.containers[0], Waiting::ContainerCreating);
    app.state = State::Running {
        started_at: ts("2026-01-01T00:00:03Z"),
    };
    app.ready = true;
    app.started = true;
    app.container_id = Some("krun://app-1".into());
    app.image_id = "127.0.0.1:5000/flask-app@sha256:bbbb".into();
    let facts = PodFacts {
        pod_ip: Some("10.88.0.5".into()),
        host_ip: Some("127.0.0.1".into()),
        start_time: Some(ts("2026-01-01T00:00:00Z")),
        sandbox_ready: true,
        terminal: false,
    };
    pod.status = Some(pod_status(
        &pod,
        &[init],
        &[app],
        &facts,
        None,
        ts("2026-01-01T00:00:03Z"),
    ));
    let mut events = EventLog::default();
    events.push(Event::scheduled(
        ts("2026-01-01T00:00:00Z"),
        "default",
        "web",
        "node-1",
    ));
    events.push(Event::started(ts("2026-01-01T00:00:03Z"), "app"));
    let text = describe_pod(&pod, &events, ts("2026-01-01T00:01:00Z"));
    let want = "\
Name:         web
Namespace:    default
Node:         node-1/127.0.0.1
Start Time:   Thu, 01 Jan 2026 00:00:00 +0000
Labels:       app=web
              tier=front
Annotations:  team: core
Status:       Running
IP:           10.88.0.5
IPs:
  IP:  10.88.0.5
Init Containers:
  setup:
    Container ID:  krun://setup-1
    Image:         busybox
    Image ID:      127.0.0.1:5000/library/busybox@sha256:aaaa
    Port:          <none>
    Host Port:     <none>
    Command:
      sh
      -c
      echo ready
    State:          Terminated
      Reason:       Completed
      Exit Code:    0
      Started:      Thu, 01 Jan 2026 00:00:01 +0000
      Finished:     Thu, 01 Jan 2026 00:00:02 +0000
    Ready:          True
    Restart Count:  0
    Environment:    <none>
    Mounts:         <none>
Containers:
  app:
    Container ID:   krun://app-1
    Image:          127.0.0.1:5000/flask-app:latest
    Image ID:       127.0.0.1:5000/flask-app@sha256:bbbb
    Port:           5000/TCP
    Host Port:      8080/TCP
    State:          Running
      Started:      Thu, 01 Jan 2026 00:00:03 +0000
    Ready:          True
    Restart Count:  0
    Limits:
      memory:  64Mi
    Requests:
      memory:  64Mi
    Liveness:  http-get http://:5000/healthz delay=0s timeout=1s period=10s #success=1 #failure=3
    Environment:
      MODE:      prod
      POD_NAME:  web (v1:metadata.name)
    Mounts:
      /cache from cache (rw)
Conditions:
  Type                        Status
  PodReadyToStartContainers   True 
  Initialized                 True 
  Ready                       True 
  ContainersReady             True 
  PodScheduled                True 
Volumes:
  cache:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      
    SizeLimit:   <unset>
QoS Class:       Burstable
Node-Selectors:  <none>
Tolerations:     <none>
Events:
  Type    Reason     Age   From               Message
  ----    ------     ----  ----               -------
  Normal  Scheduled  60s   default-scheduler  Successfully assigned default/web to node-1
  Normal  Started    57s   kubelet            Started container app
";
    if text != want {
        for (i, (a, b)) in text.lines().zip(want.lines()).enumerate() {
            if a != b {
                panic!("line {}:\n got: {a:?}\nwant: {b:?}\n\nfull:\n{text}", i + 1);
            }
        }
        assert_eq!(text, want);
    }
}
