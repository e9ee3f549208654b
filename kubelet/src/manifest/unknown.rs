//! Unknown-field detection. k8s-openapi types ignore fields they do not
//! know, so the document is re-encoded from the typed value and every key of
//! the input must still be there. Null values are skipped: they decode to
//! `None`, which encodes as an absent key, exactly like an absent field.

use serde_json::Value;

/// The path of the first input field that the typed value did not keep.
pub(crate) fn first_unknown(input: &Value, back: &Value) -> Option<String> {
    walk(input, back, String::new())
}

fn walk(input: &Value, back: &Value, path: String) -> Option<String> {
    match (input, back) {
        (Value::Object(inp), Value::Object(out)) => {
            for (key, value) in inp {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match out.get(key) {
                    None => return Some(child),
                    Some(o) => {
                        if let Some(p) = walk(value, o, child) {
                            return Some(p);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(inp), Value::Array(out)) => inp
            .iter()
            .zip(out.iter())
            .enumerate()
            .find_map(|(i, (a, b))| walk(a, b, format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_nested_extra_key() {
        let input = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "imagee": "x"}]}});
        let back = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            first_unknown(&input, &back).as_deref(),
            Some("spec.containers[1].imagee")
        );
    }

    #[test]
    fn nulls_and_kept_keys_pass() {
        let input = json!({"metadata": {"name": "a", "creationTimestamp": null}});
        let back = json!({"metadata": {"name": "a"}});
        assert_eq!(first_unknown(&input, &back), None);
    }
}
