//! HTTP basic authentication against an htpasswd file of bcrypt (`$2y$`, `$2b$`, `$2a$`) or
//! argon2id hashes. An unknown user costs one verification against a dummy hash made with the
//! algorithm and cost of the file's most common entry (chosen the same way every start), and
//! gets the same answer, so timing does not reveal who exists. bcrypt only reads 72 bytes of
//! a password: a longer one never matches a bcrypt hash, rather than matching on its prefix.
//!
//! Verification is deliberately slow; the proxy runs it off the event loop (see
//! `proxy::gate`), never inline with other requests.

use std::collections::HashMap;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use http::HeaderMap;

use super::{authorization, AuthFailure, Identity};

/// A stored password hash.
#[derive(Clone)]
pub enum StoredHash {
    /// bcrypt, `$2y$` / `$2b$` / `$2a$`.
    Bcrypt(String),
    /// argon2id PHC string.
    Argon2id(String),
}

impl std::fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoredHash::Bcrypt(_) => "Bcrypt(<hash>)",
            StoredHash::Argon2id(_) => "Argon2id(<hash>)",
        })
    }
}

impl StoredHash {
    /// Classifies an htpasswd hash; `Err` names the unsupported format.
    pub fn parse(hash: &str) -> Result<StoredHash, String> {
        if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
            hash.parse::<bcrypt::HashParts>()
                .map_err(|_| "malformed bcrypt hash".to_string())?;
            Ok(StoredHash::Bcrypt(hash.to_string()))
        } else if hash.starts_with("$argon2id$") {
            PasswordHash::new(hash).map_err(|e| format!("malformed argon2id hash: {e}"))?;
            Ok(StoredHash::Argon2id(hash.to_string()))
        } else {
            let kind = if hash.starts_with("$apr1$") {
                "MD5 ($apr1$)"
            } else if hash.starts_with("{SHA}") {
                "SHA-1 ({SHA})"
            } else {
                "crypt or plain text"
            };
            Err(format!("unsupported hash format {kind}: use bcrypt (htpasswd -B) or argon2id (gatehouse hash-password)"))
        }
    }

    /// The algorithm and its cost parameters, e.g. `bcrypt cost 12` or `argon2id m=19456,t=2,p=1`.
    pub fn cost_label(&self) -> String {
        match self {
            StoredHash::Bcrypt(h) => h.parse::<bcrypt::HashParts>().map_or_else(
                |_| "bcrypt".into(),
                |p| format!("bcrypt cost {}", p.get_cost()),
            ),
            StoredHash::Argon2id(h) => PasswordHash::new(h)
                .ok()
                .and_then(|p| argon2::Params::try_from(&p).ok())
                .map_or_else(
                    || "argon2id".into(),
                    |p| {
                        format!(
                            "argon2id m={},t={},p={}",
                            p.m_cost(),
                            p.t_cost(),
                            p.p_cost()
                        )
                    },
                ),
        }
    }

    /// A hash of a fixed password with the same algorithm and cost as `self`.
    fn dummy_like(&self) -> StoredHash {
        const PASSWORD: &[u8] = b"gatehouse-dummy-password";
        match self {
            StoredHash::Bcrypt(h) => {
                let cost = h.parse::<bcrypt::HashParts>().map_or(10, |p| p.get_cost());
                bcrypt::hash_with_salt(PASSWORD, cost, [7u8; 16])
                    .map(|h| StoredHash::Bcrypt(h.format_for_version(bcrypt::Version::TwoB)))
                    .unwrap_or_else(|_| self.clone())
            }
            StoredHash::Argon2id(h) => {
                use argon2::password_hash::{PasswordHasher, SaltString};
                let params = PasswordHash::new(h)
                    .ok()
                    .and_then(|p| argon2::Params::try_from(&p).ok())
                    .unwrap_or_default();
                let hasher =
                    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
                SaltString::encode_b64(b"gatehouse-dummy!")
                    .ok()
                    .and_then(|salt| {
                        hasher
                            .hash_password(PASSWORD, &salt)
                            .ok()
                            .map(|ph| StoredHash::Argon2id(ph.to_string()))
                    })
                    .unwrap_or_else(|| self.clone())
            }
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            // bcrypt would silently compare only the first 72 bytes.
            StoredHash::Bcrypt(_) if password.len() > 72 => false,
            StoredHash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            StoredHash::Argon2id(h) => PasswordHash::new(h)
                .map(|parsed| Argon2::default().verify_password(password, &parsed).is_ok())
                .unwrap_or(false),
        }
    }
}

/// A configured basic-auth provider.
#[derive(Debug)]
pub struct BasicProvider {
    /// `realm:`
    pub realm: String,
    /// The htpasswd file, resolved (`dump`, `report`).
    pub htpasswd: std::path::PathBuf,
    users: HashMap<String, StoredHash>,
    dummy: StoredHash,
}

impl BasicProvider {
    /// Builds a provider from parsed htpasswd entries.
    pub fn new(realm: String, users: HashMap<String, StoredHash>) -> Self {
        let dummy = most_common(&users)
            .map(StoredHash::dummy_like)
            .unwrap_or_else(|| StoredHash::Bcrypt(String::new()).dummy_like());
        BasicProvider {
            realm,
            htpasswd: std::path::PathBuf::new(),
            users,
            dummy,
        }
    }

    /// The algorithm and cost an unknown user's verification uses.
    pub fn dummy_cost(&self) -> String {
        self.dummy.cost_label()
    }

    /// Number of users in the file.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The algorithm and cost of each entry (`audit`), sorted.
    pub fn cost_labels(&self) -> Vec<String> {
        let mut v: Vec<String> = self.users.values().map(StoredHash::cost_label).collect();
        v.sort();
        v
    }

    pub(super) fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthFailure> {
        let Some(encoded) = authorization(headers, "Basic") else {
            let cause = if authorization(headers, "Bearer").is_some() {
                "bearer token presented to a basic-auth provider"
            } else {
                "no basic credentials"
            };
            return Err(AuthFailure::Missing {
                cause: cause.into(),
            });
        };
        let invalid = |cause: &str| AuthFailure::CredentialsInvalid {
            cause: cause.into(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| invalid("malformed base64 in Authorization: Basic"))?;
        let colon = decoded
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| invalid("no ':' in basic credentials"))?;
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let user = std::str::from_utf8(user).map_err(|_| invalid("user name is not UTF-8"))?;
        match self.users.get(user) {
            Some(hash) if hash.verify(password) => Ok(Identity {
                subject: Some(user.to_string()),
                expires_at: None,
                claims: Default::default(),
                source: "basic".into(),
            }),
            Some(_) => Err(invalid("wrong password")),
            None => {
                let _ = self.dummy.verify(password);
                Err(invalid("unknown user"))
            }
        }
    }
}

/// The entry whose algorithm and cost are the most common in the file; ties go to the label
/// that sorts first, so the choice is the same every start.
fn most_common(users: &HashMap<String, StoredHash>) -> Option<&StoredHash> {
    let mut counts: std::collections::BTreeMap<String, (usize, &StoredHash)> =
        std::collections::BTreeMap::new();
    for h in users.values() {
        counts.entry(h.cost_label()).or_insert((0, h)).0 += 1;
    }
    let best = counts.values().map(|(n, _)| *n).max()?;
    counts.values().find(|(n, _)| *n == best).map(|(_, h)| *h)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bcrypt_never_matches_past_72_bytes() {
        let pw = vec![b'A'; 72];
        let h = bcrypt::hash(&pw, 4).unwrap();
        let stored = StoredHash::parse(&h).unwrap();
        assert!(stored.verify(&pw));
        let mut longer = pw.clone();
        longer.extend_from_slice(b"anything");
        assert!(!stored.verify(&longer), "bcrypt truncation must not match");
    }

    #[test]
    fn unknown_users_cost_the_most_common_entry() {
        let argon = |pw: &[u8]| {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
            Argon2::default()
                .hash_password(pw, &salt)
                .unwrap()
                .to_string()
        };
        let mut users = HashMap::new();
        users.insert("a".into(), StoredHash::parse(&argon(b"x")).unwrap());
        users.insert("b".into(), StoredHash::parse(&argon(b"y")).unwrap());
        users.insert(
            "c".into(),
            StoredHash::parse(&bcrypt::hash(b"z", 4).unwrap()).unwrap(),
        );
        let p = BasicProvider::new("r".into(), users);
        assert!(
            p.dummy_cost().starts_with("argon2id m="),
            "{}",
            p.dummy_cost()
        );
        assert_eq!(
            p.dummy_cost(),
            StoredHash::parse(&argon(b"q")).unwrap().cost_label()
        );
    }
}
