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
    let dir = tempfile::tempdir().unwrap();
    let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/design/reference-policy.yaml");
    let text = std::fs::read_to_string(&reference).expect("../shared/design/reference-policy.yaml");
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
