//! Requests waiting for their client, under random one-time tokens that expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Pending;

/// How long a token stays good.
const TTL: Duration = Duration::from_secs(60);
/// Most requests kept; the oldest go first.
const MAX_ENTRIES: usize = 1000;
/// Token length, in characters of [`ALPHABET`].
const TOKEN_LEN: usize = 16;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The waiting requests.
#[derive(Default)]
pub(crate) struct Cache {
    entries: HashMap<String, (Instant, Pending)>,
}

impl Cache {
    /// Stores `p`; returns its token.
    pub(crate) fn insert(&mut self, p: Pending) -> String {
        self.insert_at(p, Instant::now())
    }

    fn insert_at(&mut self, p: Pending, now: Instant) -> String {
        self.entries
            .retain(|_, (at, _)| now.duration_since(*at) < TTL);
        while self.entries.len() >= MAX_ENTRIES {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
        loop {
            let token = new_token();
            if !self.entries.contains_key(&token) {
                self.entries.insert(token.clone(), (now, p));
                return token;
            }
        }
    }

    /// Takes the request under `token`, if it is there and still good.
    pub(crate) fn take(&mut self, token: &str) -> Option<Pending> {
        self.take_at(token, Instant::now())
    }

    fn take_at(&mut self, token: &str, now: Instant) -> Option<Pending> {
        let (at, p) = self.entries.remove(token)?;
        (now.duration_since(at) < TTL).then_some(p)
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_LEN];
    getrandom::fill(&mut bytes).expect("the kernel gives random bytes");
    bytes
        .iter()
        .map(|b| ALPHABET[(b & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::{Options, Target};

    fn req(n: usize) -> Pending {
        Pending {
            target: Target::Attach {
                container: format!("c{n}"),
            },
            options: Options::default(),
        }
    }

    #[test]
    fn a_token_is_good_once_and_for_a_minute() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        let a = c.insert_at(req(1), t0);
        assert_eq!(a.len(), TOKEN_LEN);
        assert_eq!(c.take_at(&a, t0 + Duration::from_secs(59)), Some(req(1)));
        assert_eq!(c.take_at(&a, t0 + Duration::from_secs(59)), None, "once");
        let b = c.insert_at(req(2), t0);
        assert_eq!(c.take_at(&b, t0 + Duration::from_secs(61)), None, "expired");
        assert_eq!(c.take_at("nope", t0), None);
    }

    #[test]
    fn the_oldest_requests_give_way() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        let first = c.insert_at(req(0), t0);
        for n in 1..=MAX_ENTRIES {
            c.insert_at(req(n), t0 + Duration::from_millis(n as u64));
        }
        assert_eq!(c.entries.len(), MAX_ENTRIES);
        assert_eq!(c.take_at(&first, t0), None);
    }

    #[test]
    fn tokens_differ() {
        let mut c = Cache::default();
        let a = c.insert(req(1));
        let b = c.insert(req(1));
        assert_ne!(a, b);
    }
}
