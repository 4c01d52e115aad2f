//! Verified JWTs, so a token presented again is not verified again: RS256/ES256 signature
//! checks cost tens of microseconds, and clients send the same token on every request. Keyed
//! by a SHA-256 of the provider name and the token (the token itself is not kept as a key); an
//! entry lives until the token's `exp` + leeway and is never returned after it; the cache is
//! bounded and cleared on every reload (keys, issuers or audiences may have changed).

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::policy::auth::{Identity, TokenCache};

/// The bounded cache of verified tokens.
pub struct VerifiedTokens {
    map: DashMap<[u8; 32], Identity>,
    max: usize,
    hits: AtomicU64,
}

impl VerifiedTokens {
    /// A cache holding at most `max` tokens.
    pub fn new(max: usize) -> Self {
        VerifiedTokens {
            map: DashMap::new(),
            max,
            hits: AtomicU64::new(0),
        }
    }

    fn key(provider: &str, token: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(provider.as_bytes());
        h.update([0]);
        h.update(token.as_bytes());
        h.finalize().into()
    }

    /// Forgets every token (a reload).
    pub fn clear(&self) {
        self.map.clear();
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenCache for VerifiedTokens {
    fn get(&self, provider: &str, token: &str, now: u64) -> Option<Identity> {
        let key = Self::key(provider, token);
        let entry = self.map.get(&key)?;
        if entry.expires_at.is_some_and(|at| at > now) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(entry.clone());
        }
        drop(entry);
        self.map.remove(&key);
        None
    }

    fn put(&self, provider: &str, token: &str, identity: &Identity) {
        if identity.expires_at.is_none() {
            return;
        }
        if self.map.len() >= self.max {
            let now = now_secs();
            self.map
                .retain(|_, id| id.expires_at.is_some_and(|at| at > now));
            if self.map.len() >= self.max {
                return;
            }
        }
        self.map
            .insert(Self::key(provider, token), identity.clone());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_decision_verifies_a_token_once_then_asks_the_cache() {
        use crate::policy::{decide_with, evaluate::facts_for, Outcome};
        use crate::runtime::limits::{MemoryStore, RuntimeAdmission};
        const SECRET: &str = "cache-secret-0123456789abcdef-0123456";
        let yaml = r#"
version: 1
server: { listen: [{ addr: "127.0.0.1:1" }] }
upstream: { addr: "127.0.0.1:9" }
auth: { j: { jwt: { algorithms: [HS256], secret_env: S } } }
routes: [{ name: api, match: { prefix: / }, auth: j }]
"#;
        let env = |n: &str| (n == "S").then(|| SECRET.as_bytes().to_vec());
        let policy =
            crate::config::load_str(yaml, std::path::Path::new("/t/p.yaml"), &env).unwrap();
        let now = now_secs();
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "alice", "exp": now + 60}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("host", http::HeaderValue::from_static("x"));
        headers.insert(
            "authorization",
            http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let cache = Arc::new(VerifiedTokens::new(10));
        let store: Arc<dyn crate::runtime::limits::LimitStore> = Arc::new(MemoryStore::new());
        let method = http::Method::GET;
        let facts = facts_for("192.0.2.1".parse().unwrap(), &method, b"/x", &headers, now);
        for _ in 0..3 {
            let mut adm = RuntimeAdmission::new(store.clone()).with_token_cache(cache.clone());
            let d = decide_with(&policy, &facts, &mut adm, false);
            assert!(matches!(d.outcome, Outcome::Forward(_)));
        }
        assert_eq!(
            cache.hits(),
            2,
            "verified once, then answered from the cache"
        );
        // A forged token is never a hit, and is never cached.
        let mut bad = headers.clone();
        bad.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer a.b.c"),
        );
        let facts = facts_for("192.0.2.1".parse().unwrap(), &method, b"/x", &bad, now);
        let mut adm = RuntimeAdmission::new(store).with_token_cache(cache.clone());
        assert!(matches!(
            decide_with(&policy, &facts, &mut adm, false).outcome,
            Outcome::Deny(_)
        ));
        assert_eq!(cache.len(), 1);
    }

    fn id(exp: u64) -> Identity {
        Identity {
            subject: Some("alice".into()),
            expires_at: Some(exp),
            claims: Default::default(),
            source: "header".into(),
        }
    }

    #[test]
    fn hits_until_expiry_per_provider_and_bounded() {
        let c = VerifiedTokens::new(2);
        c.put("p", "t1", &id(100));
        assert!(c.get("p", "t1", 99).is_some());
        assert!(c.get("q", "t1", 99).is_none(), "keyed by provider too");
        assert!(
            c.get("p", "t1", 100).is_none(),
            "never returned at or after expiry"
        );
        assert!(c.get("p", "t1", 50).is_none(), "and forgotten");
        let now = now_secs();
        c.put("p", "a", &id(now + 60));
        c.put("p", "b", &id(now + 60));
        c.put("p", "c", &id(now + 60));
        assert_eq!(c.len(), 2, "bounded");
        c.clear();
        assert!(c.is_empty());
    }
}
