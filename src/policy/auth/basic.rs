//! HTTP basic authentication against an htpasswd file of bcrypt (`$2y$`, `$2b$`, `$2a$`) or
//! argon2id hashes. An unknown user costs the same hash verification as a known one (against
//! a fixed dummy hash) and gets the same answer, so responses don't reveal who exists.

use std::collections::HashMap;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use http::HeaderMap;
use serde_json::Map;

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

    fn verify(&self, password: &[u8]) -> bool {
        match self {
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
    users: HashMap<String, StoredHash>,
    dummy: StoredHash,
}

impl BasicProvider {
    /// Builds a provider from parsed htpasswd entries.
    pub fn new(realm: String, users: HashMap<String, StoredHash>) -> Self {
        // Same cost as the file's first bcrypt entry, so an unknown user costs as much.
        let cost = users
            .values()
            .find_map(|h| match h {
                StoredHash::Bcrypt(s) => s.parse::<bcrypt::HashParts>().ok().map(|p| p.get_cost()),
                StoredHash::Argon2id(_) => None,
            })
            .unwrap_or(4);
        let dummy = bcrypt::hash_with_salt(b"gatehouse-dummy", cost, [7u8; 16])
            .map(|h| StoredHash::Bcrypt(h.format_for_version(bcrypt::Version::TwoB)))
            .unwrap_or_else(|_| StoredHash::Bcrypt(String::new()));
        BasicProvider {
            realm,
            users,
            dummy,
        }
    }

    /// Number of users in the file.
    pub fn user_count(&self) -> usize {
        self.users.len()
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
                claims: Map::new(),
                source: "basic".into(),
                strip_query_param: None,
            }),
            Some(_) => Err(invalid("wrong password")),
            None => {
                let _ = self.dummy.verify(password);
                Err(invalid("unknown user"))
            }
        }
    }
}
