//! Name rules of the Kubernetes API (apimachinery's validation package).
//! Each check returns the API server's explanation when the value is bad.

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn dns1123_label(value: &str) -> Result<(), String> {
    if value.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters (a lowercase RFC 1123 label)"
        ));
    }
    if !label_chars_ok(value) {
        return Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')".into());
    }
    Ok(())
}

fn label_chars_ok(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| is_lower_alnum(c) || c == '-')
        && value.starts_with(is_lower_alnum)
        && value.ends_with(is_lower_alnum)
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters (a lowercase RFC 1123 subdomain)"
        ));
    }
    if value.is_empty() || !value.split('.').all(label_chars_ok) {
        return Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')".into());
    }
    Ok(())
}

fn qualified_name_part_ok(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(alnum)
        && name.ends_with(alnum)
        && name
            .chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
}

/// Label and annotation keys: an optional DNS subdomain prefix and `/`, then
/// a name of at most 63 characters.
pub fn qualified_name(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, value),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        dns1123_subdomain(prefix).map_err(|e| format!("prefix part {e}"))?;
    }
    if !qualified_name_part_ok(name) {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', must start and end with an alphanumeric character and be at most 63 characters (e.g. 'MyName', 'my.name', or '123-abc'), with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into());
    }
    Ok(())
}

/// Label values: empty, or like the name part of a qualified name.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || qualified_name_part_ok(value) {
        Ok(())
    } else {
        Err("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character and be at most 63 characters".into())
    }
}

/// IANA service names, as port names must be: at most 15 characters,
/// lowercase letters, digits and '-', at least one letter, no '--' and no
/// '-' at either end.
pub fn port_name(value: &str) -> Result<(), String> {
    if value.len() > 15 {
        return Err("must be no more than 15 characters".into());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into(),
        );
    }
    if value.contains("--") {
        return Err("must not contain consecutive hyphens".into());
    }
    if !value.chars().any(|c| c.is_ascii_lowercase()) {
        return Err("must contain at least one letter (a-z)".into());
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err("must not begin or end with a hyphen".into());
    }
    Ok(())
}

/// Environment variable names (relaxed rule, GA since Kubernetes 1.34):
/// printable ASCII other than '='.
pub fn env_var_name(value: &str) -> Result<(), String> {
    if value.is_empty() || !value.chars().all(|c| (' '..='~').contains(&c) && c != '=') {
        return Err("a valid environment variable name must consist only of printable ASCII characters other than '='".into());
    }
    Ok(())
}

/// Keys of ConfigMap and Secret data: `[-._a-zA-Z0-9]+`, at most 253, not `.` or `..`.
pub fn config_map_key(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > DNS1123_SUBDOMAIN_MAX {
        return Err("must be between 1 and 253 characters".into());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name')".into());
    }
    if value == "." || value == ".." {
        return Err(format!("must not be '{value}'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(dns1123_label("web-1").is_ok());
        assert!(dns1123_label("Web").is_err());
        assert!(dns1123_label("-web").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert!(dns1123_subdomain("a.b-c.d").is_ok());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("my_pod").is_err());
    }

    #[test]
    fn qualified_names_and_values() {
        assert!(qualified_name("app.kubernetes.io/name").is_ok());
        assert!(qualified_name("App_Name").is_ok());
        assert!(qualified_name("/x").is_err());
        assert!(qualified_name("Example.com/x").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_a").is_ok());
        assert!(label_value("-bad").is_err());
    }

    #[test]
    fn port_names() {
        assert!(port_name("http").is_ok());
        assert!(port_name("h2c-8080").is_ok());
        assert!(port_name("8080").is_err());
        assert!(port_name("a--b").is_err());
        assert!(port_name("Http").is_err());
        assert!(port_name("abcdefghijklmnop").is_err());
    }

    #[test]
    fn env_names_and_keys() {
        assert!(env_var_name("MY_VAR.1").is_ok());
        assert!(env_var_name("A=B").is_err());
        assert!(env_var_name("").is_err());
        assert!(config_map_key("app.properties").is_ok());
        assert!(config_map_key("..").is_err());
        assert!(config_map_key("a/b").is_err());
    }
}
