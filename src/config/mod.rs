//! Loading the policy file: YAML text → [`raw`] structs (the file as written; unknown keys
//! collected, never ignored) → [`compile`]d [`Policy`] (values parsed, references resolved,
//! files read). Every error carries file, line:column and key path; all of them are reported.

pub mod compile;
pub mod error;
pub mod locate;
pub mod raw;
pub mod tls;
pub mod values;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};

use crate::policy::Policy;
use compile::{Compiler, EnvLookup};
use locate::Locator;

/// Whether the policy's secrets must be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// `run`: a missing secret is an error.
    Required,
    /// Review (`check --no-secrets`, `audit`, `test`, `explain`): a missing JWT secret leaves
    /// its provider unable to verify tokens, and decisions that need it say so.
    Optional,
}

/// Loads and compiles the policy file at `path`, reading secrets from the process environment.
pub fn load(path: &Path) -> Result<Policy, ConfigErrors> {
    load_with(path, Secrets::Required)
}

/// [`load`], choosing whether secrets are required.
pub fn load_with(path: &Path, secrets: Secrets) -> Result<Policy, ConfigErrors> {
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
    load_str_with(&text, path, &env, secrets)
}

/// Compiles policy `text` as if read from `path` (relative files resolve beside it).
pub fn load_str(text: &str, path: &Path, env: EnvLookup<'_>) -> Result<Policy, ConfigErrors> {
    load_str_with(text, path, env, Secrets::Required)
}

/// [`load_str`], choosing whether secrets are required.
pub fn load_str_with(
    text: &str,
    path: &Path,
    env: EnvLookup<'_>,
    secrets: Secrets,
) -> Result<Policy, ConfigErrors> {
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
            // serde stops at the first structural error; look at every section on its own
            // to report the others too (a route with a wrong type does not hide the next).
            let more = structural_errors(text, &path, &message);
            errors.push(ConfigError {
                file: file.clone(),
                line,
                column,
                path,
                message,
            });
            errors.extend(more.into_iter().map(|(p, m)| at(p, m, false)));
            errors.sort_by_key(|e| (e.line, e.column));
            return Err(ConfigErrors(errors));
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut compiler = Compiler::new(base, env);
    if secrets == Secrets::Optional {
        compiler = compiler.without_secrets();
    }
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

/// Every structural error (wrong type, missing key) of each section and each list or map
/// entry, deserialized one at a time; `first` (already reported) is left out.
fn structural_errors(text: &str, first: &str, first_message: &str) -> Vec<(String, String)> {
    use serde::de::DeserializeOwned;
    use serde_yaml::Value;
    fn one<T: DeserializeOwned>(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
        if let Err(e) = serde_path_to_error::deserialize::<_, T>(v.clone()) {
            let inner = render_tracked(e.path());
            let path = match (prefix.is_empty(), inner.is_empty()) {
                (true, _) => inner,
                (false, true) => prefix.to_string(),
                (false, false) if inner.starts_with('[') => format!("{prefix}{inner}"),
                (false, false) => format!("{prefix}.{inner}"),
            };
            let message = clean_message(&e.inner().to_string(), &path);
            out.push((path, message));
        }
    }
    let Ok(Value::Mapping(root)) = serde_yaml::from_str::<Value>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for required in ["version", "server", "upstream", "routes"] {
        if !root.contains_key(required) {
            out.push((String::new(), format!("missing field `{required}`")));
        }
    }
    for (k, v) in &root {
        let Some(k) = k.as_str() else { continue };
        match k {
            "version" => one::<u32>(v, k, &mut out),
            "server" => one::<raw::RawServer>(v, k, &mut out),
            "upstream" => one::<raw::RawUpstream>(v, k, &mut out),
            "defaults" => one::<raw::RawDefaults>(v, k, &mut out),
            "access" => one::<raw::RawAccess>(v, k, &mut out),
            "auth" | "origins" => match v {
                Value::Mapping(m) => {
                    for (name, entry) in m {
                        let key = format!("{k}.{}", name.as_str().unwrap_or("?"));
                        if k == "auth" {
                            one::<raw::RawAuthProvider>(entry, &key, &mut out);
                        } else {
                            one::<raw::RawOriginList>(entry, &key, &mut out);
                        }
                    }
                }
                other => one::<std::collections::BTreeMap<String, Value>>(other, k, &mut out),
            },
            "routes" => match v {
                Value::Sequence(items) => {
                    for (i, r) in items.iter().enumerate() {
                        one::<raw::RawRoute>(r, &format!("routes[{i}]"), &mut out);
                    }
                }
                other => one::<Vec<Value>>(other, k, &mut out),
            },
            _ => {}
        }
    }
    out.retain(|(p, m)| !(p == first && (!p.is_empty() || m == first_message)));
    out.dedup();
    out
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
