//! Pod manifests: YAML or JSON files with one or more documents, parsed into
//! k8s-openapi types, then defaulted and validated as the API server does.
//!
//! Every error is one line naming the file, the document (its index among
//! the file's non-empty documents, and its kind and name) and the field path.

pub mod defaults;
mod security;
mod unknown;
mod validate;

pub mod names;
pub mod quantity;

use std::fmt;
use std::io::Read;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// One object read from a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Pod(Box<Pod>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
        }
    }

    pub fn name(&self) -> &str {
        let meta = match self {
            Object::Pod(p) => &p.metadata,
            Object::ConfigMap(c) => &c.metadata,
            Object::Secret(s) => &s.metadata,
        };
        meta.name.as_deref().unwrap_or("")
    }
}

/// A parsed document and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file name as the user gave it.
    pub file: String,
    /// 1-based index among the file's non-empty documents.
    pub index: usize,
    pub object: Object,
}

/// What went wrong while loading a manifest; `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: line {line}, column {column}: malformed YAML: {message}")]
    Syntax {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{file}: malformed YAML: {message}")]
    SyntaxNoLocation { file: String, message: String },
    #[error("{file}: larger than {max} bytes")]
    TooLarge { file: String, max: u64 },
    #[error("{file}: no documents")]
    Empty { file: String },
    #[error("{0}")]
    Invalid(Box<FieldError>),
}

/// A problem with one field of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub file: String,
    pub index: usize,
    /// "Pod web", "Pod" when the name is missing, empty when the kind is.
    pub label: String,
    /// Dotted path such as `spec.containers[1].ports[0].containerPort`;
    /// empty for the document as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file, self.index)?;
        if !self.label.is_empty() {
            write!(f, " ({})", self.label)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Where a document sits, for building errors while checking it.
#[derive(Debug, Clone)]
pub(crate) struct DocRef<'a> {
    pub file: &'a str,
    pub index: usize,
    pub label: String,
}

impl DocRef<'_> {
    pub(crate) fn err(&self, path: impl Into<String>, message: impl Into<String>) -> ManifestError {
        ManifestError::Invalid(Box::new(FieldError {
            file: self.file.to_string(),
            index: self.index,
            label: self.label.clone(),
            path: path.into(),
            message: message.into(),
        }))
    }
}

/// Manifests larger than this are refused before parsing.
pub const MAX_FILE: u64 = 16 << 20;

/// YAML nodes per file, aliases expanded.
pub const MAX_NODES: usize = 100_000;

/// Kinds this loader knows, as (apiVersion, kind).
const KINDS: &[(&str, &str)] = &[("v1", "Pod"), ("v1", "ConfigMap"), ("v1", "Secret")];

/// Read and check every document of a file.
pub fn load_file(path: &Path) -> Result<Vec<Document>, ManifestError> {
    let file = path.display().to_string();
    let read_err = |source| ManifestError::Read {
        file: file.clone(),
        source,
    };
    let f = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(ManifestError::TooLarge {
            file,
            max: MAX_FILE,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| ManifestError::SyntaxNoLocation {
        file: file.clone(),
        message: format!("not UTF-8 text: {e}"),
    })?;
    parse_str(&file, &text)
}

/// Parse, default and validate the documents of `text`, named `file` in errors.
pub fn parse_str(file: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    // Far above any real manifest, far below what an alias bomb expands to.
    // Zero-prefixed numbers are octal, as kubectl reads them (YAML 1.1):
    // `defaultMode: 0400` is 256.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: MAX_NODES,
        },
        legacy_octal_numbers: true,
    };
    let values: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| syntax_error(file, &e))?;
    let mut docs = Vec::new();
    for (i, value) in values.into_iter().filter(|v| !v.is_null()).enumerate() {
        let index = i + 1;
        let object = parse_document(file, index, value)?;
        docs.push(Document {
            file: file.to_string(),
            index,
            object,
        });
    }
    if docs.is_empty() {
        return Err(ManifestError::Empty {
            file: file.to_string(),
        });
    }
    validate::cross_document(&docs)?;
    Ok(docs)
}

fn syntax_error(file: &str, e: &serde_saphyr::Error) -> ManifestError {
    let plain = e.without_snippet().to_string();
    // The plain rendering may repeat the position; keep the first line only.
    let message = plain.lines().next().unwrap_or("").trim();
    // Advice to the programmer, not to the user.
    let message = message
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(message)
        .to_string();
    let message = if message.starts_with("budget breached") {
        format!("more than {MAX_NODES} nodes once aliases are expanded")
    } else {
        message
    };
    match e.location() {
        Some(loc) if loc.line() > 0 => ManifestError::Syntax {
            file: file.to_string(),
            line: loc.line(),
            column: loc.column(),
            message: strip_position(&message),
        },
        _ => ManifestError::SyntaxNoLocation {
            file: file.to_string(),
            message,
        },
    }
}

/// Drop a trailing "at line N column M" the library may append.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].trim_end_matches(',').to_string(),
        None => message.to_string(),
    }
}

fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

fn parse_document(file: &str, index: usize, value: Value) -> Result<Object, ManifestError> {
    let kind = str_field(&value, "kind").map(str::to_string);
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let label = match (&kind, &name) {
        (Some(k), Some(n)) => format!("{k} {n}"),
        (Some(k), None) => k.clone(),
        (None, _) => String::new(),
    };
    let doc = DocRef { file, index, label };
    if !value.is_object() {
        return Err(doc.err("", "a document must be a mapping with apiVersion and kind"));
    }
    let Some(kind) = kind else {
        return Err(doc.err("kind", "required field is missing"));
    };
    let Some(api_version) = str_field(&value, "apiVersion").map(str::to_string) else {
        return Err(doc.err("apiVersion", "required field is missing"));
    };
    let Some((want_version, _)) = KINDS.iter().find(|(_, k)| *k == kind) else {
        let known: Vec<String> = KINDS.iter().map(|(v, k)| format!("{v} {k}")).collect();
        return Err(doc.err(
            "kind",
            format!(
                "unknown kind \"{kind}\" (krun accepts {})",
                known.join(", ")
            ),
        ));
    };
    if api_version != *want_version {
        return Err(doc.err(
            "apiVersion",
            format!(
                "kind {kind} is served by apiVersion \"{want_version}\", not \"{api_version}\""
            ),
        ));
    }
    match kind.as_str() {
        "Pod" => {
            let mut pod: Pod = typed(&doc, value)?;
            defaults::pod(&mut pod);
            validate::pod(&doc, &pod)?;
            Ok(Object::Pod(Box::new(pod)))
        }
        "ConfigMap" => {
            let mut cm: ConfigMap = typed(&doc, value)?;
            defaults::namespace(&mut cm.metadata);
            validate::config_map(&doc, &cm)?;
            Ok(Object::ConfigMap(Box::new(cm)))
        }
        "Secret" => {
            let mut secret: Secret = typed(&doc, value)?;
            defaults::secret(&mut secret);
            validate::secret(&doc, &secret)?;
            Ok(Object::Secret(Box::new(secret)))
        }
        _ => Err(doc.err("kind", format!("unknown kind \"{kind}\""))),
    }
}

/// Deserialize into `T`, then refuse any field `T` does not have.
fn typed<T: DeserializeOwned + Serialize>(
    doc: &DocRef<'_>,
    value: Value,
) -> Result<T, ManifestError> {
    let object: T = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        doc.err(path, e.into_inner().to_string())
    })?;
    let back = serde_json::to_value(&object)
        .map_err(|e| doc.err("", format!("cannot re-encode the document: {e}")))?;
    if let Some(path) = unknown::first_unknown(&value, &back) {
        let field = path.rsplit(['.', '[']).next().unwrap_or(&path).to_string();
        return Err(doc.err(path, format!("unknown field \"{field}\"")));
    }
    Ok(object)
}

#[cfg(test)]
mod tests;
