//! `gatehouse hash-password`: reads a password on stdin (no echo on a terminal) and prints an
//! htpasswd line `USER:HASH` (or the hash alone) that the basic-auth provider accepts.

use std::io::{BufRead, IsTerminal};

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;

use super::HashAlgorithm;

/// Exit 0 and print the line, or 2 on a read error / empty password.
pub fn hash_password(user: Option<&str>, algorithm: HashAlgorithm, cost: u32) -> i32 {
    if let Some(u) = user {
        if u.is_empty() || u.contains(':') || u.contains('\n') {
            eprintln!("error: a user name must be non-empty and contain no ':'");
            return 2;
        }
    }
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map(|_| line.trim_end_matches(['\r', '\n']).to_string())
    };
    let password = match password {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => {
            eprintln!("error: empty password");
            return 2;
        }
        Err(e) => {
            eprintln!("error: cannot read the password: {e}");
            return 2;
        }
    };
    if algorithm == HashAlgorithm::Bcrypt && password.len() > 72 {
        eprintln!(
            "error: the password is {} bytes; bcrypt reads only 72 and would ignore the rest. Use --algorithm argon2id",
            password.len()
        );
        return 2;
    }
    let hash = match algorithm {
        HashAlgorithm::Bcrypt => bcrypt::hash(password.as_bytes(), cost).map_err(|e| e.to_string()),
        HashAlgorithm::Argon2id => {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| e.to_string())
        }
    };
    match hash {
        Ok(h) => {
            match user {
                Some(u) => println!("{u}:{h}"),
                None => println!("{h}"),
            }
            0
        }
        Err(e) => {
            eprintln!("error: hashing failed: {e}");
            2
        }
    }
}
