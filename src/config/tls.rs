//! TLS listener files, loaded the way the listener will load them: a certificate chain in
//! PEM, a private key in PEM, and the key must be the certificate's. Done at compile time, so
//! `check` refuses a bad pair, a reload keeps the running policy, and `run` stops with exit 3
//! naming the file instead of starting with a dead listener.

use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why a certificate/key pair cannot serve; `.0` is `cert` or `key` (the file at fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProblem(pub &'static str, pub String);

/// Loads and matches one pair.
pub fn check_pair(cert: &Path, key: &Path) -> Result<(), TlsProblem> {
    let certs = read_certs(cert).map_err(|m| TlsProblem("cert", m))?;
    let key_der = read_key(key).map_err(|m| TlsProblem("key", m))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| {
            TlsProblem(
                "key",
                format!("{}: unusable private key: {e}", key.display()),
            )
        })?;
    match CertifiedKey::new(certs, signing).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsProblem(
                "key",
                format!(
                    "{} is not the private key of the certificate in {}",
                    key.display(),
                    cert.display()
                ),
            ))
        }
        Err(e) => Err(TlsProblem(
            "cert",
            format!("{}: unusable certificate: {e}", cert.display()),
        )),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: malformed PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE block in PEM", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| format!("{}: malformed PEM: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PRIVATE KEY block in PEM", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fx(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn a_matching_pair_loads() {
        assert_eq!(check_pair(&fx("server.pem"), &fx("server.key")), Ok(()));
    }

    #[test]
    fn mismatches_and_garbage_name_the_file() {
        let e = check_pair(&fx("server.pem"), &fx("other.key")).unwrap_err();
        assert_eq!(e.0, "key");
        assert!(
            e.1.contains("other.key") && e.1.contains("not the private key"),
            "{e:?}"
        );
        let e = check_pair(&fx("garbage.pem"), &fx("server.key")).unwrap_err();
        assert_eq!(e.0, "cert");
        assert!(e.1.contains("garbage.pem"), "{e:?}");
        let e = check_pair(&fx("server.pem"), &fx("garbage.pem")).unwrap_err();
        assert_eq!(e.0, "key");
        let e = check_pair(&fx("missing.pem"), &fx("server.key")).unwrap_err();
        assert!(e.1.contains("cannot read"), "{e:?}");
    }
}
