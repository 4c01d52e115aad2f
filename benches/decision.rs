//! Microbenchmark of the pure decision (the work Gatehouse adds per request before Pingora
//! forwards it): a public route, a JWT-protected route, a 404 and a path trick. Plain
//! `std::time` loops, no timing assertions; run with `cargo bench --bench decision`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Method};
use jsonwebtoken::{encode, EncodingKey, Header};

use gatehouse::policy::{decide, RequestFacts};

const SECRET: &str = "bench-secret-0123456789abcdef-0123456";

fn main() {
    let env = |name: &str| (name == "GATEHOUSE_JWT_SECRET").then(|| SECRET.as_bytes().to_vec());
    let text = std::fs::read_to_string("proxy.yaml").expect("run from the workspace root");
    let policy = gatehouse::config::load_str(&text, Path::new("proxy.yaml"), &env).expect("policy");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub":"bench","role":"tester","iss":"https://auth.example.com","aud":"voiceflow-api","exp": now + 3600});
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let mut authed = HeaderMap::new();
    authed.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    authed.insert("host", HeaderValue::from_static("localhost:8080"));
    let mut plain = HeaderMap::new();
    plain.insert("host", HeaderValue::from_static("localhost:8080"));
    let get = Method::GET;
    let cases: [(&str, &[u8], &HeaderMap); 4] = [
        ("public /health", b"/health", &plain),
        ("jwt /api/v1/echo", b"/api/v1/echo?x=1", &authed),
        ("404 /nothing", b"/nothing", &plain),
        ("bad_path %2e%2e", b"/api/%2e%2e/%2e%2e/etc", &plain),
    ];
    println!("{:<20} {:>12}", "case", "ns/decision");
    for (name, target, headers) in cases {
        let facts = RequestFacts {
            peer: "127.0.0.1".parse().unwrap(),
            method: &get,
            target,
            headers,
            head_bytes: 200,
            now,
            version: http::Version::HTTP_11,
            tls: false,
            assumed_identity: None,
        };
        for _ in 0..1_000 {
            black_box(decide(&policy, black_box(&facts), false));
        }
        let n = 20_000u32;
        let t = Instant::now();
        for _ in 0..n {
            black_box(decide(&policy, black_box(&facts), false));
        }
        println!(
            "{:<20} {:>12.0}",
            name,
            t.elapsed().as_nanos() as f64 / f64::from(n)
        );
    }
    token_cache_bench();
}

/// RS256 and HS256 tokens, verified every time vs answered from the runtime's token cache.
fn token_cache_bench() {
    use gatehouse::policy::decide_with;
    use gatehouse::runtime::limits::{LimitStore, MemoryStore, RuntimeAdmission};
    use gatehouse::runtime::token_cache::VerifiedTokens;
    use jsonwebtoken::Algorithm;
    use std::sync::Arc;
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let yaml = format!(
        r#"
version: 1
server: {{ listen: [{{ addr: "127.0.0.1:1" }}] }}
upstream: {{ addr: "127.0.0.1:9" }}
auth:
  rs: {{ jwt: {{ algorithms: [RS256], public_key_file: "{}/rsa.pub" }} }}
  hs: {{ jwt: {{ algorithms: [HS256], secret_env: GATEHOUSE_JWT_SECRET }} }}
routes:
  - {{ name: rs, match: {{ prefix: /rs/ }}, auth: rs }}
  - {{ name: hs, match: {{ prefix: /hs/ }}, auth: hs }}
"#,
        keys.display()
    );
    let env = |name: &str| (name == "GATEHOUSE_JWT_SECRET").then(|| SECRET.as_bytes().to_vec());
    let policy = gatehouse::config::load_str(&yaml, Path::new("/b/p.yaml"), &env).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": "bench", "exp": now + 3600});
    let rsa = std::fs::read(keys.join("rsa.key")).unwrap();
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&rsa).unwrap(),
    )
    .unwrap();
    let hs = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let store: Arc<dyn LimitStore> = Arc::new(MemoryStore::new());
    let cache = Arc::new(VerifiedTokens::new(1000));
    let get = Method::GET;
    println!("\n{:<28} {:>12}", "token", "ns/decision");
    for (name, target, token) in [("RS256", &b"/rs/x"[..], &rs), ("HS256", b"/hs/x", &hs)] {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("localhost"));
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let facts = gatehouse::policy::evaluate::facts_for(
            "127.0.0.1".parse().unwrap(),
            &get,
            target,
            &headers,
            now,
        );
        for cached in [false, true] {
            let n = 2_000u32;
            let t = Instant::now();
            for _ in 0..n {
                let mut adm = RuntimeAdmission::new(store.clone());
                if cached {
                    adm = adm.with_token_cache(cache.clone());
                }
                black_box(decide_with(&policy, black_box(&facts), &mut adm, false));
            }
            let label = format!("{name} {}", if cached { "cached" } else { "verified" });
            println!(
                "{:<28} {:>12.0}",
                label,
                t.elapsed().as_nanos() as f64 / f64::from(n)
            );
        }
    }
}
