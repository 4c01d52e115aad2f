//! The command line: `check` on the reference policy and on broken fixtures, start errors.

use std::process::{Command, Stdio};

use crate::support::*;

fn gatehouse(args: &[&str]) -> std::process::Output {
    Command::new(bin("gatehouse"))
        .args(args)
        .env("GATEHOUSE_JWT_SECRET", SECRET)
        .output()
        .unwrap()
}

#[test]
fn check_accepts_the_reference_policy() {
    // The project's own copy of the contract (issue 6.9: the repository stands alone).
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixtures().join("reference-policy.yaml")).unwrap();
    std::fs::write(dir.path().join("reference-policy.yaml"), text).unwrap();
    std::fs::copy(
        fixtures().join("ops.htpasswd"),
        dir.path().join("ops.htpasswd"),
    )
    .unwrap();
    let out = gatehouse(&[
        "check",
        "-c",
        dir.path().join("reference-policy.yaml").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("OK") && stdout.contains("logs-ws"),
        "{stdout}"
    );
}

#[test]
fn the_reference_policy_copy_is_in_step_with_the_contract() {
    // Where the design folder sits beside the checkout (a developer's machine, CI), the copy
    // must equal it; a clone on its own has only the copy, and this test has nothing to compare.
    let contract = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/design/reference-policy.yaml");
    if let Ok(contract) = std::fs::read_to_string(&contract) {
        let copy = std::fs::read_to_string(fixtures().join("reference-policy.yaml")).unwrap();
        assert_eq!(
            copy, contract,
            "tests/fixtures/reference-policy.yaml differs from the contract: copy it again"
        );
    }
}

#[test]
fn check_accepts_the_shipped_policy_and_examples() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("proxy.yaml")];
    for e in std::fs::read_dir(root.join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            files.push(p);
        }
    }
    for f in files {
        let out = gatehouse(&["check", "-c", f.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn check_reports_every_error_with_line_column_and_key_path() {
    let dir = fixtures().join("invalid");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let file = line.split(':').next().unwrap();
        let out = gatehouse(&["check", "-c", dir.join(file).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{file} must be rejected");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!("{}/{line}", dir.display());
        assert!(
            stderr.contains(&want),
            "{file}: expected\n  {want}\nin\n{stderr}"
        );
    }
}

#[test]
fn secrets_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    let text = crate::foundation::POLICY.replace("{{FIXTURES}}", &fixtures().display().to_string());
    std::fs::write(&policy, text).unwrap();
    std::fs::copy(
        fixtures().join("ops.htpasswd"),
        dir.path().join("ops.htpasswd"),
    )
    .unwrap();
    let out = Command::new(bin("gatehouse"))
        .args(["check", "-c", policy.to_str().unwrap()])
        .env("GATEHOUSE_JWT_SECRET", "too-short-secret-value")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("secret_env: the secret is 22 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("too-short-secret-value"), "{stderr}");
}

#[test]
fn port_in_use_names_the_address_and_holder() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\nserver:\n  listen:\n    - addr: \"{addr}\"\nupstream:\n  addr: \"127.0.0.1:9\"\nroutes:\n  - name: all\n    match: {{ prefix: / }}\n    auth: none\n"
        ),
    )
    .unwrap();
    let out = Command::new(bin("gatehouse"))
        .args(["run", "-c", policy.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("address already in use"), "{stderr}");
    assert!(stderr.contains("server.listen[0]"), "{stderr}");
    drop(held);
}

#[test]
fn hash_password_lines_are_accepted_by_basic_auth() {
    use std::io::Write;
    for alg in ["bcrypt", "argon2id"] {
        let mut child = Command::new(bin("gatehouse"))
            .args([
                "hash-password",
                "--user",
                "carol",
                "--algorithm",
                alg,
                "--cost",
                "4",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"s3cret pass\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let line = String::from_utf8(out.stdout).unwrap();
        assert!(line.starts_with("carol:$"), "{line}");
        let hash = line.trim().split_once(':').unwrap().1;
        assert!(
            gatehouse::policy::auth::basic::StoredHash::parse(hash).is_ok(),
            "{alg}: {hash}"
        );
    }
}

fn tls_policy(dir: &std::path::Path, cert: &str, key: &str) -> std::path::PathBuf {
    let policy = dir.join("tls.yaml");
    let tls = fixtures().join("tls");
    std::fs::write(
        &policy,
        format!(
            "version: 1\nserver:\n  listen:\n    - addr: \"127.0.0.1:{}\"\n      tls: {{ cert: \"{}\", key: \"{}\" }}\nupstream:\n  addr: \"127.0.0.1:9\"\nroutes:\n  - name: all\n    match: {{ prefix: / }}\n    auth: none\n",
            free_port(),
            tls.join(cert).display(),
            tls.join(key).display()
        ),
    )
    .unwrap();
    policy
}

#[test]
fn a_bad_tls_pair_fails_check_and_run_names_the_file() {
    // Regression (issue 6.10): a mismatched key passed `check` and left `run` alive with a
    // dead listener.
    let dir = tempfile::tempdir().unwrap();
    let good = tls_policy(dir.path(), "server.pem", "server.key");
    let out = gatehouse(&["check", "-c", good.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (cert, key, key_path, file) in [
        (
            "server.pem",
            "other.key",
            "server.listen[0].tls.key",
            "other.key",
        ),
        (
            "garbage.pem",
            "server.key",
            "server.listen[0].tls.cert",
            "garbage.pem",
        ),
        (
            "server.pem",
            "garbage.pem",
            "server.listen[0].tls.key",
            "garbage.pem",
        ),
    ] {
        let policy = tls_policy(dir.path(), cert, key);
        let out = gatehouse(&["check", "-c", policy.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cert}/{key}: {stderr}");
        assert!(
            stderr.contains(key_path) && stderr.contains(file) && stderr.contains("tls.yaml:5:"),
            "{cert}/{key}: {stderr}"
        );
        let out = Command::new(bin("gatehouse"))
            .args(["run", "-c", policy.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{cert}/{key}: {stderr}");
        assert!(stderr.contains(file), "{stderr}");
    }
}

#[test]
fn zero_leeway_is_valid() {
    // Regression (issue 6.10): every zero duration used to be refused.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "version: 1\nserver:\n  listen:\n    - addr: \"127.0.0.1:1\"\nupstream:\n  addr: \"127.0.0.1:9\"\nauth:\n  j:\n    jwt:\n      algorithms: [HS256]\n      secret_env: GATEHOUSE_JWT_SECRET\n      leeway: 0s\nroutes:\n  - name: all\n    match: { prefix: / }\n    auth: j\n",
    )
    .unwrap();
    let out = gatehouse(&["check", "-c", policy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hash_password_refuses_bcrypt_past_72_bytes() {
    use std::io::Write;
    let mut child = Command::new(bin("gatehouse"))
        .args(["hash-password", "--algorithm", "bcrypt", "--cost", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let long = format!("{}\n", "A".repeat(73));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(long.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("72") && stderr.contains("argon2id"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_warns_when_an_htpasswd_file_mixes_algorithms() {
    // The fixture holds one bcrypt and one argon2id entry.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("ops.htpasswd"),
        dir.path().join("ops.htpasswd"),
    )
    .unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "version: 1\nserver:\n  listen:\n    - addr: \"127.0.0.1:1\"\nupstream:\n  addr: \"127.0.0.1:9\"\nauth:\n  ops:\n    basic: { htpasswd: ops.htpasswd }\nroutes:\n  - name: all\n    match: { prefix: / }\n    auth: ops\n",
    )
    .unwrap();
    let out = gatehouse(&["check", "-c", policy.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("auth.ops.basic.htpasswd: warning:") && stderr.contains("mixes"),
        "{stderr}"
    );
}

#[test]
fn check_hints_at_websocket_misconfigurations() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        r#"version: 1
server:
  listen: [{ addr: "127.0.0.1:1" }]
upstream: { addr: "127.0.0.1:9" }
auth:
  j:
    jwt: { algorithms: [HS256], secret_env: GATEHOUSE_JWT_SECRET, token_sources: [header, "cookie:t"] }
origins:
  dev: ["http://localhost:3000"]
routes:
  - name: open-origins
    match: { path: /a }
    auth: j
    websocket: {}
  - name: mixed
    match: { path: /b }
    auth: j
    websocket: { origins: ["https://app.example.com"], allow_missing_origin: true }
  - name: dev
    match: { path: /c }
    auth: none
    websocket: { origins: dev }
"#,
    )
    .unwrap();
    let out = gatehouse(&["check", "-c", policy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "routes[0].websocket: warning: no websocket.origins, and the provider accepts cookie tokens",
        "routes[1].websocket.origins: warning: allows https:// pages, but every listener is plain ws://",
        "routes[1].websocket.allow_missing_origin: warning: on a socket that accepts cookie tokens",
        "origins.dev: warning: names the loopback host as localhost only",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in\n{stderr}");
    }
}

#[test]
fn policy_tests_of_the_shipped_policy_pass_without_secrets() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(bin("gatehouse"))
        .args(["test", "-c"])
        .arg(root.join("proxy.yaml"))
        .arg(root.join("tests/policy/proxy.tests.yaml"))
        .env_remove("GATEHOUSE_JWT_SECRET")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().last().unwrap().ends_with("passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn a_failing_policy_test_prints_expected_got_and_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let tests = dir.path().join("t.yaml");
    std::fs::write(
        &tests,
        "tests:\n  - name: wrong on purpose\n    request: { method: GET, path: /health }\n    expect: { decision: deny, reason: no_route }\n",
    )
    .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(bin("gatehouse"))
        .args(["test", "-c"])
        .arg(root.join("proxy.yaml"))
        .arg(&tests)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("decision: expected deny, got allow"),
        "{stdout}"
    );
    assert!(stdout.contains("| route"), "trail printed: {stdout}");
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

#[test]
fn explain_without_the_secret_explains_up_to_authentication() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(bin("gatehouse"))
        .args(["explain", "-c"])
        .arg(root.join("proxy.yaml"))
        .args(["GET", "/swagger/index.html", "--ip", "198.51.100.7"])
        .env_remove("GATEHOUSE_JWT_SECRET")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("=> DENY 403 ip_denied"), "{stdout}");
    let out = Command::new(bin("gatehouse"))
        .args(["explain", "-c"])
        .arg(root.join("proxy.yaml"))
        .args([
            "GET",
            "/api/v1/echo",
            "-H",
            "Authorization: Bearer a.b.c",
            "--format",
            "json",
        ])
        .env_remove("GATEHOUSE_JWT_SECRET")
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["decision"], "undetermined", "{j}");
    assert_eq!(j["step"], "auth");
    assert!(j["status"].is_null());
    let check = Command::new(bin("gatehouse"))
        .args(["check", "--no-secrets", "-c"])
        .arg(root.join("proxy.yaml"))
        .env_remove("GATEHOUSE_JWT_SECRET")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let plain = Command::new(bin("gatehouse"))
        .args(["check", "-c"])
        .arg(root.join("proxy.yaml"))
        .env_remove("GATEHOUSE_JWT_SECRET")
        .output()
        .unwrap();
    assert_eq!(
        plain.status.code(),
        Some(1),
        "without --no-secrets the secret is required"
    );
}

const RISKY: &str = r#"version: 1
server:
  listen: [{ addr: "0.0.0.0:1" }]
  admin: "0.0.0.0:2"
  client_ip: { trusted_proxies: ["0.0.0.0/0"] }
  paths: { allow_semicolon: true }
  headers: { allow_underscores: true }
upstream: { addr: "127.0.0.1:9" }
auth:
  j:
    jwt: { algorithms: [HS256], secret_file: secret.key, leeway: 60s, token_sources: [header, "cookie:t"] }
  ops:
    basic: { htpasswd: ops.htpasswd }
routes:
  - name: open
    match: { prefix: /admin/ }
    auth: none
  - name: raw
    match: { prefix: /raw/ }
    auth: j
    cors: upstream
  - name: any
    match: { prefix: /any/ }
    auth: none
    cors: { origins: ["*"] }
  - name: ws
    match: { path: /ws }
    auth: j
    websocket: { allow_missing_origin: true }
  - name: ops
    match: { prefix: /ops/ }
    auth: ops
"#;

#[test]
fn audit_finds_risky_settings_in_text_json_and_sarif() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("ops.htpasswd"),
        dir.path().join("ops.htpasswd"),
    )
    .unwrap();
    let secret = dir.path().join("secret.key");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let policy = dir.path().join("risky.yaml");
    std::fs::write(&policy, RISKY).unwrap();
    let p = policy.to_str().unwrap();
    let out = gatehouse(&["audit", "-c", p, "--format", "json"]);
    assert_eq!(out.status.code(), Some(4), "high findings fail the run");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    for want in [
        "GH001", "GH002", "GH003", "GH004", "GH005", "GH006", "GH007", "GH008", "GH009", "GH010",
        "GH011", "GH012", "GH013", "GH014", "GH015", "GH016", "GH017",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    let admin = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "GH002")
        .unwrap();
    for field in [
        "severity", "key", "file", "line", "column", "message", "fix",
    ] {
        assert!(!admin[field].is_null(), "{field}: {admin}");
    }
    assert_eq!(admin["key"], "server.admin");
    assert_eq!(admin["line"], 4);
    assert_eq!(admin["severity"], "high");

    let out = gatehouse(&["audit", "-c", p, "--format", "sarif"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["version"], "2.1.0");
    let results = s["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), ids.len());
    assert!(results[0]["locations"][0]["physicalLocation"]["region"]["startLine"].is_u64());
    assert!(
        s["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .len()
            >= 17
    );

    // --fail-on decides the exit code; a comment beside the key explains a finding.
    let out = gatehouse(&["audit", "-c", p, "--fail-on", "high"]);
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GH002") && text.contains("fix:"), "{text}");
}

#[test]
fn the_shipped_policy_and_examples_have_no_unexplained_high_findings() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("proxy.yaml")];
    for e in std::fs::read_dir(root.join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            files.push(p);
        }
    }
    for f in files {
        let out = Command::new(bin("gatehouse"))
            .args(["audit", "--fail-on", "low", "-c"])
            .arg(&f)
            .env_remove("GATEHOUSE_JWT_SECRET")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn dump_of_the_shipped_policy_is_accepted_and_explains_alike() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(bin("gatehouse"))
        .args(["dump", "-c"])
        .arg(root.join("proxy.yaml"))
        .env_remove("GATEHOUSE_JWT_SECRET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("secret_env: GATEHOUSE_JWT_SECRET"), "{text}");
    assert!(!text.contains(SECRET));
    let dir = tempfile::tempdir().unwrap();
    let dumped = dir.path().join("effective.yaml");
    std::fs::write(&dumped, &text).unwrap();
    let check = gatehouse(&["check", "-c", dumped.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let token = hs256(&claims("alice", "tester"));
    let auth = format!("Authorization: Bearer {token}");
    for args in [
        vec!["GET", "/health"],
        vec!["POST", "/api/transcribe", "-H", "Content-Length: 99999999"],
        vec!["GET", "/api/v1/echo", "-H", "Origin: https://evil.test"],
        vec!["GET", "/swagger/index.html", "--ip", "198.51.100.7"],
        vec![
            "OPTIONS",
            "/api/v1/x",
            "-H",
            "Origin: http://127.0.0.1:3000",
            "-H",
            "Access-Control-Request-Method: GET",
        ],
        vec![
            "GET",
            "/ws",
            "-H",
            "Upgrade: websocket",
            "-H",
            "Connection: Upgrade",
            "-H",
            auth.as_str(),
        ],
    ] {
        let explain = |file: &std::path::Path| {
            let out = Command::new(bin("gatehouse"))
                .args(["explain", "-c"])
                .arg(file)
                .args(&args)
                .args(["--format", "json"])
                .env("GATEHOUSE_JWT_SECRET", SECRET)
                .output()
                .unwrap();
            let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            (
                j["decision"].clone(),
                j["status"].clone(),
                j["reason"].clone(),
                j["route"].clone(),
            )
        };
        assert_eq!(
            explain(&root.join("proxy.yaml")),
            explain(&dumped),
            "{args:?}"
        );
    }
}
