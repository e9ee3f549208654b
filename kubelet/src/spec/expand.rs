//! `$(VAR)` expansion exactly as Kubernetes does it
//! (third_party/forked/golang/expansion): `$(NAME)` is replaced when NAME is
//! defined and left as written when not, `$$` is an escaped `$`, and any
//! other `$` is kept literally.

/// Expand `input` with `lookup`.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.extend_from_slice(&bytes[checkpoint..cursor]);
            let (read, is_var, advance) = read_variable_name(&bytes[cursor + 1..]);
            if is_var {
                let name = String::from_utf8_lossy(read);
                match lookup(&name) {
                    Some(v) => out.extend_from_slice(v.as_bytes()),
                    None => {
                        out.extend_from_slice(b"$(");
                        out.extend_from_slice(read);
                        out.push(b')');
                    }
                }
            } else {
                out.push(b'$');
                out.extend_from_slice(read);
            }
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.extend_from_slice(&bytes[checkpoint.min(bytes.len())..]);
    // Only whole input pieces and whole values were copied: still UTF-8.
    String::from_utf8_lossy(&out).into_owned()
}

/// What follows a `$`: (bytes to write after a `$`, or the variable name;
/// whether it is a variable; bytes consumed).
fn read_variable_name(input: &[u8]) -> (&[u8], bool, usize) {
    match input[0] {
        // `$$` is an escaped `$`.
        b'$' => (&input[..0], false, 1),
        b'(' => match input[1..].iter().position(|b| *b == b')') {
            Some(end) => (&input[1..end + 1], true, end + 2),
            // Unterminated: `$(` stays as written.
            None => (&input[..1], false, 1),
        },
        // A `$` that starts nothing: it and the next byte stay as written.
        _ => (&input[..1], false, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn ex(s: &str) -> String {
        expand(s, |name| match name {
            "VAR_A" => Some("A"),
            "VAR_B" => Some("B"),
            "EMPTY" => Some(""),
            _ => None,
        })
    }

    #[test]
    fn cases_from_the_kubernetes_rules() {
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_A)___", "___A___"),
            ("$(VAR_A)-$(VAR_B)", "A-B"),
            ("$(VAR_A)$(VAR_B)", "AB"),
            ("$(EMPTY)x", "x"),
            ("$(UNDEFINED)", "$(UNDEFINED)"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$$", "$"),
            ("$", "$"),
            ("x$", "x$"),
            ("$VAR_A", "$VAR_A"),
            ("$(VAR_A", "$(VAR_A"),
            ("$()", "$()"),
            ("$(VAR_A)$", "A$"),
            ("€$(VAR_A)€", "€A€"),
            ("$€", "$€"),
            ("no vars", "no vars"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(ex(input), want, "{input:?}");
        }
    }
}
