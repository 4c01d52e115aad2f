//! `gatehouse schema`: the committed docs/policy.schema.json is what the binary prints; the
//! shipped policy, the examples and the reference policy validate against it with a real
//! validator; and the schema and the loader agree on keys — a policy using every key passes
//! both, and an unknown key anywhere fails both.

use std::process::Command;

use serde_json::Value;

use crate::support::*;

fn schema() -> Value {
    let out = Command::new(bin("gatehouse"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn yaml_to_json(text: &str) -> Value {
    serde_yaml::from_str::<Value>(text).unwrap()
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_committed_schema_is_current() {
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/policy.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        committed,
        schema(),
        "run: gatehouse schema > docs/policy.schema.json"
    );
}

#[test]
fn shipped_examples_and_reference_validate() {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    let mut files = vec![
        root().join("proxy.yaml"),
        fixtures().join("reference-policy.yaml"),
    ];
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            files.push(p);
        }
    }
    for f in files {
        let doc = yaml_to_json(&std::fs::read_to_string(&f).unwrap());
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
}

/// A policy that uses every key of the format once.
const EVERY_KEY: &str = r#"
version: 1
server:
  listen:
    - addr: "127.0.0.1:18443"
      tls: { cert: "{{FIXTURES}}/tls/server.pem", key: "{{FIXTURES}}/tls/server.key" }
  admin: "127.0.0.1:18901"
  client_ip: { trusted_proxies: ["10.0.0.0/8"] }
  timeouts: { request_header: 10s, http_idle: 60s, upstream_read: 60s, websocket_idle: 1h }
  limits: { connections_per_ip: 10, max_header_bytes: 16KiB, max_headers: 50, auth_failures_per_ip: "5/1m" }
  paths: { allow_semicolon: false, case_insensitive: false }
  headers: { allow_underscores: false }
upstream: { addr: "127.0.0.1:9000", connect_timeout: 2s }
defaults: { max_body: 1MiB, rate_limit: { per_ip: "10/1m", per_subject: "20/1m", burst: 2, shadow: false } }
access: { allow: ["0.0.0.0/0"], deny: ["203.0.113.0/24"] }
auth:
  a:
    jwt:
      algorithms: [HS256]
      secret_env: GATEHOUSE_JWT_SECRET
      issuer: "https://auth.test"
      audience: [api]
      leeway: 0s
      token_sources: [header, "cookie:t", "query:access_token"]
      forward_claims: { sub: X-Sub }
  b: { jwt: { algorithms: [RS256], jwks_file: "{{FIXTURES}}/keys/jwks.json" } }
  c: { jwt: { algorithms: [ES256], public_key_file: "{{FIXTURES}}/keys/ec.pub" } }
  d: { jwt: { algorithms: [HS256], secret_file: "{{FIXTURES}}/../../Cargo.toml" } }
  ops: { basic: { realm: ops, htpasswd: "{{FIXTURES}}/ops.htpasswd" } }
origins:
  web: ["https://app.example.com"]
  dev: { origins: ["http://localhost:3000"], loopback_aliases: true }
routes:
  - name: r1
    match: { path: /a, methods: [GET] }
    access: { allow: ["10.0.0.0/8"], deny: [] }
    auth: a
    require: { claims: { role: [admin] } }
    cors: { origins: web, credentials: true, methods: [GET], headers: [authorization], expose_headers: [x-request-id], max_age: 10m, enforce: true }
    max_body: 10MiB
    upstream_timeout: 120s
    rate_limit: none
    concurrency: { max_in_flight: 3, queue: 20, queue_timeout: 30s }
  - name: r2
    match: { prefix: /ws }
    auth: a
    websocket: { origins: dev, max_per_ip: 5, max_per_subject: 3, idle_timeout: 2h, allow_missing_origin: false, close_on_token_expiry: true }
  - name: r3
    match: { prefix: /b/ }
    auth: none
    cors: upstream
"#;

/// Object paths (JSON pointers into EVERY_KEY) where an unknown key must be refused by both.
const OBJECTS: &[&str] = &[
    "",
    "/server",
    "/server/listen/0",
    "/server/listen/0/tls",
    "/server/client_ip",
    "/server/timeouts",
    "/server/limits",
    "/server/paths",
    "/server/headers",
    "/upstream",
    "/defaults",
    "/defaults/rate_limit",
    "/access",
    "/auth/a",
    "/auth/a/jwt",
    "/auth/ops/basic",
    "/origins/dev",
    "/routes/0",
    "/routes/0/match",
    "/routes/0/access",
    "/routes/0/require",
    "/routes/0/cors",
    "/routes/0/concurrency",
    "/routes/1/websocket",
];

fn loads(doc: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, serde_yaml::to_string(doc).unwrap()).unwrap();
    let out = Command::new(bin("gatehouse"))
        .args(["check", "-c"])
        .arg(&p)
        .env("GATEHOUSE_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn schema_and_loader_agree_on_every_key() {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    let text = EVERY_KEY.replace("{{FIXTURES}}", &fixtures().display().to_string());
    let doc = yaml_to_json(&text);
    loads(&doc).expect("the loader accepts every key");
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "the schema accepts every key: {errors:?}"
    );
    for at in OBJECTS {
        let mut bad = doc.clone();
        bad.pointer_mut(at)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{at} is an object"))
            .insert("no_such_key".into(), Value::Bool(true));
        let loader = loads(&bad).expect_err(&format!("loader accepted an unknown key at {at:?}"));
        assert!(
            loader.contains("unknown key `no_such_key`")
                || loader.contains("unknown field `no_such_key`"),
            "{at}: {loader}"
        );
        assert!(
            !validator.is_valid(&bad),
            "schema accepted an unknown key at {at:?}"
        );
    }
}
