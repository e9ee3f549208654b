use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2026-01-02T03:04:05.123456789Z";

fn texts(lines: &[LogLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l.stream.as_str(),
                String::from_utf8_lossy(&l.content)
            )
        })
        .collect()
}

#[test]
fn timestamps_are_go_rfc3339_nano() {
    assert_eq!(rfc3339_nano(t(NOW)), "2026-01-02T03:04:05.123456789Z");
    assert_eq!(
        rfc3339_nano(t("2026-01-02T03:04:05.5Z")),
        "2026-01-02T03:04:05.5Z"
    );
    assert_eq!(
        rfc3339_nano(t("2026-01-02T03:04:05.000000010Z")),
        "2026-01-02T03:04:05.00000001Z"
    );
    assert_eq!(
        rfc3339_nano(t("2026-01-02T03:04:05Z")),
        "2026-01-02T03:04:05Z"
    );
}

#[test]
fn paths_follow_the_kubelet_layout() {
    let dir = pod_dir(Path::new("/var/log/pods"), "default", "web", "1234-ab");
    assert_eq!(dir, Path::new("/var/log/pods/default_web_1234-ab"));
    assert_eq!(
        container_log(&dir, "app", 2),
        Path::new("/var/log/pods/default_web_1234-ab/app/2.log")
    );
}

#[test]
fn cri_records_split_by_line_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = container_log(dir.path(), "app", 0);
    let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
    let now = t(NOW);
    w.write(Stream::Stdout, b"hello\nwor", now).unwrap();
    w.write(Stream::Stderr, b"oops\n", now).unwrap();
    w.write(Stream::Stdout, b"ld\n\nlast", now).unwrap();
    w.finish(Stream::Stdout, now).unwrap();
    w.finish(Stream::Stderr, now).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "2026-01-02T03:04:05.123456789Z stdout F hello\n\
         2026-01-02T03:04:05.123456789Z stderr F oops\n\
         2026-01-02T03:04:05.123456789Z stdout F world\n\
         2026-01-02T03:04:05.123456789Z stdout F \n\
         2026-01-02T03:04:05.123456789Z stdout F last\n"
    );
    let (lines, _) = read_log(&path, ReadOptions::default()).unwrap();
    assert_eq!(
        texts(&lines),
        [
            "stdout hello",
            "stderr oops",
            "stdout world",
            "stdout ",
            "stdout last"
        ]
    );
    assert_eq!(
        lines[0].render(true),
        b"2026-01-02T03:04:05.123456789Z hello\n"
    );
    assert_eq!(lines[0].render(false), b"hello\n");
    let (tail, _) = read_log(&path, ReadOptions { tail: Some(2) }).unwrap();
    assert_eq!(texts(&tail), ["stdout ", "stdout last"]);
}

#[test]
fn long_lines_become_partial_records_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app/0.log");
    let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
    let long = vec![b'x'; MAX_LINE * 2 + 10];
    w.write(Stream::Stdout, &long, t(NOW)).unwrap();
    w.write(Stream::Stderr, b"between\n", t(NOW)).unwrap();
    w.write(Stream::Stdout, b"\n", t("2026-01-02T03:04:06Z"))
        .unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let tags: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(tags, ["P", "P", "F", "F"]);
    let (lines, _) = read_log(&path, ReadOptions::default()).unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].stream, Stream::Stderr);
    assert_eq!(
        lines[1].content, long,
        "the partial records join into the one line"
    );
    assert_eq!(
        lines[1].time, "2026-01-02T03:04:05.123456789Z",
        "a line carries its first record's time"
    );
}

#[test]
fn rotation_keeps_the_newest_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app/0.log");
    let rotation = Rotation {
        max_size: 200,
        max_files: 3,
    };
    let mut w = LogWriter::open(&path, rotation).unwrap();
    // Each record is 40 bytes: five fit in 200, the sixth rotates.
    let mut now = t("2026-01-02T03:04:05Z");
    for i in 0..20 {
        w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes(), now)
            .unwrap();
        now = now
            .checked_add(jiff::SignedDuration::from_millis(400))
            .unwrap();
    }
    let rotated = rotated_files(&path).unwrap();
    assert_eq!(rotated.len(), 2, "max_files counts the live file");
    let mut names: Vec<String> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|n| n.starts_with("0.log")), "{names:?}");
    for f in rotated.iter().chain([&path]) {
        assert!(fs::metadata(f).unwrap().len() <= 200);
    }
    let (lines, _) = read_log(&path, ReadOptions::default()).unwrap();
    let got: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.content).into_owned())
        .collect();
    let want: Vec<String> = (5..20).map(|i| format!("line {i:02}")).collect();
    assert_eq!(got, want, "the newest three files, in order");
}

#[test]
fn follow_sees_new_lines_across_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app/0.log");
    let mut w = LogWriter::open(
        &path,
        Rotation {
            max_size: 200,
            max_files: 5,
        },
    )
    .unwrap();
    w.write(Stream::Stdout, b"one\n", t(NOW)).unwrap();
    let (lines, mut follow) = read_log(&path, ReadOptions { tail: Some(10) }).unwrap();
    assert_eq!(texts(&lines), ["stdout one"]);
    assert!(follow.poll().unwrap().is_empty());
    w.write(Stream::Stdout, b"two\nthr", t(NOW)).unwrap();
    assert_eq!(texts(&follow.poll().unwrap()), ["stdout two"]);
    // Enough to rotate twice; the follower must not lose or repeat a line.
    let mut want = vec!["stdout three".to_string()];
    w.write(Stream::Stdout, b"ee\n", t(NOW)).unwrap();
    for i in 0..8 {
        w.write(Stream::Stderr, format!("err {i}\n").as_bytes(), t(NOW))
            .unwrap();
        want.push(format!("stderr err {i}"));
    }
    assert!(rotated_files(&path).unwrap().len() >= 2);
    assert_eq!(texts(&follow.poll().unwrap()), want);
}

#[test]
fn previous_restart_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let ctr = dir.path().join("app");
    assert!(restarts_with_logs(&ctr).unwrap().is_empty());
    for n in [0, 1, 2, 10] {
        LogWriter::open(&container_log(dir.path(), "app", n), Rotation::default()).unwrap();
    }
    fs::write(ctr.join("2.log.20260101-000000"), b"").unwrap();
    assert_eq!(restarts_with_logs(&ctr).unwrap(), [0, 1, 2, 10]);
}

#[test]
fn a_symlink_in_place_of_the_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("app")).unwrap();
    let target = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, dir.path().join("app/0.log")).unwrap();
    let err = LogWriter::open(&dir.path().join("app/0.log"), Rotation::default()).unwrap_err();
    assert!(err.to_string().starts_with("open log "), "{err}");
    assert!(!target.exists());
}
