//! Stop signals as images name them: "SIGTERM", "TERM", "15", "SIGRTMIN+3".

use super::SpecError;

/// The signal number of `name`; SIGTERM when the image names none.
pub fn parse(name: Option<&str>) -> Result<i32, SpecError> {
    let Some(raw) = name.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(libc::SIGTERM);
    };
    let bad = || SpecError::Signal(raw.to_string());
    if let Ok(n) = raw.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = raw.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+')
                .and_then(|r| r.parse().ok())
                .ok_or_else(bad)?
        };
        let n = libc::SIGRTMIN() + off;
        return if n <= libc::SIGRTMAX() {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('-')
                .and_then(|r| r.parse().ok())
                .ok_or_else(bad)?
        };
        let n = libc::SIGRTMAX() - off;
        return if n >= libc::SIGRTMIN() {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    format!("SIG{bare}")
        .parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_numbers_and_realtime() {
        assert_eq!(parse(None).unwrap(), libc::SIGTERM);
        assert_eq!(parse(Some("SIGQUIT")).unwrap(), libc::SIGQUIT);
        assert_eq!(parse(Some("int")).unwrap(), libc::SIGINT);
        assert_eq!(parse(Some("9")).unwrap(), 9);
        assert_eq!(parse(Some("SIGRTMIN+3")).unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse(Some("RTMAX-1")).unwrap(), libc::SIGRTMAX() - 1);
        for bad in ["SIGNOPE", "0", "99", "RTMIN+99", "RTMIN3"] {
            assert!(parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
