//! The provably-fair scheme, exactly as the casino code computes it.
//!
//! 1. A server seed is 32 random bytes written as 64 lower-case hex characters; the seed
//!    *text* is what gets hashed and used as the HMAC key.
//! 2. `server_seed_hash` = hex SHA-256 of the seed text.
//! 3. `result_hash` = hex HMAC-SHA256(key = seed text, message = `"<client_seed>:<nonce>"`).
//! 4. roll = (first 8 hex characters as an integer mod 10000) / 100, in 0.00..=99.99.
//!
//! The nonce starts at 0 for each seed and the seed rotates after 1,000 bets (or on
//! request), which reveals it.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Bets per server seed before it rotates by itself.
pub(crate) const BETS_PER_SEED: u64 = 1_000;

/// Hex SHA-256 of the seed text.
pub(crate) fn seed_hash(seed_hex: &str) -> String {
    hex::encode(Sha256::digest(seed_hex.as_bytes()))
}

/// Hex HMAC-SHA256 keyed by the seed text over `"<client_seed>:<nonce>"`.
pub(crate) fn result_hash(seed_hex: &str, client_seed: &str, nonce: u64) -> String {
    match Hmac::<Sha256>::new_from_slice(seed_hex.as_bytes()) {
        Ok(mut mac) => {
            mac.update(format!("{client_seed}:{nonce}").as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC accepts keys of any length; this arm is never taken.
        Err(_) => String::new(),
    }
}

/// The roll encoded by a result hash.
pub(crate) fn roll_from_hash(hash: &str) -> f64 {
    let head = hash.get(..8).unwrap_or("0");
    let n = u64::from_str_radix(head, 16).unwrap_or(0);
    (n % 10_000) as f64 / 100.0
}

/// The roll of `client_seed` at `nonce` under `seed_hex`.
pub(crate) fn roll(seed_hex: &str, client_seed: &str, nonce: u64) -> (String, f64) {
    let hash = result_hash(seed_hex, client_seed, nonce);
    let roll = roll_from_hash(&hash);
    (hash, roll)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_is_in_range_and_stable() {
        let (hash, roll) = roll("00".repeat(32).as_str(), "abc", 0);
        assert_eq!(hash.len(), 64);
        assert!((0.0..=99.99).contains(&roll));
        assert_eq!(roll_from_hash("0000ffff"), (0xffff % 10_000) as f64 / 100.0);
    }
}
