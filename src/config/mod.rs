//! Loading the policy file: YAML text → [`raw`] structs (the file as written; unknown keys
//! collected, never ignored) → [`compile`]d [`Policy`] (values parsed, references resolved,
//! files read). Every error carries file, line:column and key path; all of them are reported.

pub mod compile;
pub mod error;
pub mod locate;
pub mod raw;
pub mod values;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};

use crate::policy::Policy;
use compile::{Compiler, EnvLookup};
use locate::Locator;

/// Loads and compiles the policy file at `path`, reading secrets from the process environment.
pub fn load(path: &Path) -> Result<Policy, ConfigErrors> {
    let env = |name: &str| std::env::var_os(name).map(|v| v.into_encoded_bytes());
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the policy file: {e}"),
        }])
    })?;
    load_str(&text, path, &env)
}

/// Compiles policy `text` as if read from `path` (relative files resolve beside it).
pub fn load_str(text: &str, path: &Path, env: EnvLookup<'_>) -> Result<Policy, ConfigErrors> {
    let file = path.display().to_string();
    let locator = Locator::new(text);
    let at = |path: String, message: String, key: bool| {
        let (line, column) = if key {
            locator.key(&path)
        } else {
            locator.value(&path)
        };
        ConfigError {
            file: file.clone(),
            line,
            column,
            path,
            message,
        }
    };

    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let de = serde_yaml::Deserializer::from_str(text);
    let tracked = serde_path_to_error::Deserializer::new(de, &mut track);
    let parsed: Result<raw::RawPolicy, _> =
        serde_ignored::deserialize(tracked, |p: serde_ignored::Path<'_>| {
            unknown.push(ignored_path(&p))
        });
    let mut errors: Vec<ConfigError> = unknown
        .into_iter()
        .map(|(path, key)| at(path, format!("unknown key `{key}`"), true))
        .collect();
    let raw = match parsed {
        Ok(raw) => raw,
        Err(e) => {
            let path = render_tracked(&track.path());
            let (line, column) = match e.location() {
                Some(l) => (l.line(), l.column()),
                None => locator.value(&path),
            };
            let message = clean_message(&e.to_string(), &path);
            errors.push(ConfigError {
                file: file.clone(),
                line,
                column,
                path,
                message,
            });
            return Err(ConfigErrors(errors));
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut compiler = Compiler::new(base, env);
    let policy = compiler.compile(&raw, path);
    errors.extend(compiler.errors.into_iter().map(|(p, m)| at(p, m, false)));
    match policy {
        Some(p) if errors.is_empty() => Ok(p),
        _ => {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors(errors))
        }
    }
}

/// serde_yaml puts the path before and " at line L column C" after its messages; we print
/// both up front, and name YAML shapes rather than our internal struct names.
fn clean_message(msg: &str, path: &str) -> String {
    let mut m = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if let Some(rest) = m.strip_prefix(path).and_then(|r| r.strip_prefix(": ")) {
        m = rest;
    }
    match m.find("expected struct Raw") {
        Some(i) => format!("{}expected a mapping", &m[..i]),
        None => m.to_string(),
    }
}

fn render_tracked(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => out.push_str(&format!(".{variant}")),
            Segment::Unknown => {}
        }
    }
    out
}

/// (full path, last key) of an ignored (unknown) key.
fn ignored_path(p: &serde_ignored::Path<'_>) -> (String, String) {
    use serde_ignored::Path as P;
    fn render(p: &P<'_>, out: &mut String) {
        match p {
            P::Root => {}
            P::Seq { parent, index } => {
                render(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            P::Map { parent, key } => {
                render(parent, out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                render(parent, out)
            }
        }
    }
    let mut out = String::new();
    render(p, &mut out);
    let key = match p {
        P::Map { key, .. } => key.clone(),
        _ => out.clone(),
    };
    (out, key)
}
