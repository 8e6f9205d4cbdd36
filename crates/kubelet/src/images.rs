//! The kubelet's image manager (`EnsureImageExists`): the pull policy decides whether to
//! pull, a failed pull puts the image in back-off (`ErrImagePull`, then `ImagePullBackOff`
//! with the last error), and the pod's pull secrets are tried in turn before the node's
//! credentials.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use peapod_types::backoff::{Backoff, BackoffTable};
use peapod_types::credentials::Keyring;
use peapod_types::image_ref::Reference;
use peapod_types::pod::PullPolicy;

use crate::clock::after;

/// What to do about a container's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It is in the store and need not be pulled.
    Present,
    /// Pull it now.
    Pull,
    /// The container cannot start: (reason, message, when to look again).
    Wait(String, String, Timestamp),
}

/// Image pull state of one pod.
#[derive(Debug, Clone)]
pub struct ImageManager {
    backoff: BackoffTable,
    /// The last pull error per image (`ErrImagePull: …`), shown during the back-off.
    last_error: HashMap<String, String>,
}

impl ImageManager {
    /// A manager with these back-off settings.
    pub fn new(settings: Backoff) -> ImageManager {
        ImageManager {
            backoff: BackoffTable::new(settings),
            last_error: HashMap::new(),
        }
    }

    /// The decision for `image` under `policy`, given whether the store has it.
    pub fn decide(
        &self,
        image: &str,
        policy: PullPolicy,
        present: bool,
        now: Timestamp,
    ) -> Decision {
        let retry = after(now, self.backoff.settings().base());
        if let Err(e) = Reference::parse(image) {
            return Decision::Wait(
                "InvalidImageName".into(),
                format!("Failed to apply default image tag {image:?}: {e}"),
                after(now, Duration::from_secs(10)),
            );
        }
        match (policy, present) {
            (PullPolicy::Never, true) | (PullPolicy::IfNotPresent, true) => {
                return Decision::Present;
            }
            (PullPolicy::Never, false) => {
                return Decision::Wait(
                    "ErrImageNeverPull".into(),
                    format!("Container image {image:?} is not present with pull policy of Never"),
                    after(now, Duration::from_secs(10)),
                );
            }
            _ => {}
        }
        if self.backoff.in_backoff_since_update(image, now) {
            let mut message = format!("Back-off pulling image {image:?}");
            if let Some(e) = self.last_error.get(image) {
                message.push_str(": ");
                message.push_str(e);
            }
            // The pod worker looks again after its own retry period or when the back-off
            // ends, whichever comes first.
            let ends = self.backoff.update_wait_ends(image).unwrap_or(retry);
            return Decision::Wait("ImagePullBackOff".into(), message, ends.min(retry));
        }
        Decision::Pull
    }

    /// Records a failed pull of `image` at `now`; returns when to look again.
    pub fn failed(&mut self, image: &str, message: &str, now: Timestamp) -> Timestamp {
        self.backoff.next(image, now, now);
        self.last_error
            .insert(image.to_string(), format!("ErrImagePull: {message}"));
        let delay = self.backoff.get(image).unwrap_or_default();
        after(now, delay.min(self.backoff.settings().base()))
    }

    /// Records a successful pull of `image`.
    pub fn succeeded(&mut self, image: &str, now: Timestamp) {
        self.last_error.remove(image);
        self.backoff.reset(image);
        self.backoff.gc(now);
    }
}

/// The pod's credentials for `image`, best first (the kubelet's keyring lookup); empty when
/// none matches and the node's own credentials are to be used.
pub fn pull_credentials(keyring: &Keyring, image: &str) -> Vec<peapod_runtime::AuthConfig> {
    let Ok(r) = Reference::parse(image) else {
        return Vec::new();
    };
    keyring
        .lookup(&r.registry, &r.repository)
        .into_iter()
        .map(|c| peapod_runtime::AuthConfig {
            username: c.username,
            password: c.password,
            server_address: r.registry.clone(),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::t;

    const IMG: &str = "registry.example/app:1";

    #[test]
    fn the_pull_policy_decides_whether_to_pull() {
        let m = ImageManager::new(Backoff::default());
        assert_eq!(
            m.decide(IMG, PullPolicy::IfNotPresent, true, t(0)),
            Decision::Present
        );
        assert_eq!(
            m.decide(IMG, PullPolicy::IfNotPresent, false, t(0)),
            Decision::Pull
        );
        assert_eq!(
            m.decide(IMG, PullPolicy::Always, true, t(0)),
            Decision::Pull
        );
        assert_eq!(
            m.decide(IMG, PullPolicy::Never, true, t(0)),
            Decision::Present
        );
        let Decision::Wait(reason, message, _) = m.decide(IMG, PullPolicy::Never, false, t(0))
        else {
            panic!()
        };
        assert_eq!(reason, "ErrImageNeverPull");
        assert_eq!(
            message,
            "Container image \"registry.example/app:1\" is not present with pull policy of Never"
        );
    }

    #[test]
    fn an_invalid_name_waits_with_its_reason() {
        let m = ImageManager::new(Backoff::default());
        let Decision::Wait(reason, message, _) =
            m.decide("Bad:Name", PullPolicy::Always, false, t(0))
        else {
            panic!()
        };
        assert_eq!(reason, "InvalidImageName");
        assert!(
            message.starts_with("Failed to apply default image tag \"Bad:Name\""),
            "{message}"
        );
    }

    #[test]
    fn a_failed_pull_backs_off_and_shows_the_last_error() {
        let mut m = ImageManager::new(Backoff::default());
        let retry = m.failed(IMG, "manifest unknown", t(0));
        assert_eq!(retry, t(10));
        let Decision::Wait(reason, message, until) = m.decide(IMG, PullPolicy::Always, false, t(5))
        else {
            panic!()
        };
        assert_eq!(reason, "ImagePullBackOff");
        assert_eq!(
            message,
            "Back-off pulling image \"registry.example/app:1\": ErrImagePull: manifest unknown"
        );
        assert_eq!(until, t(10));
        assert_eq!(
            m.decide(IMG, PullPolicy::Always, false, t(10)),
            Decision::Pull
        );
        // The second failure doubles the back-off; the worker still looks after the base.
        assert_eq!(m.failed(IMG, "again", t(10)), t(20));
        assert!(matches!(
            m.decide(IMG, PullPolicy::Always, false, t(25)),
            Decision::Wait(..)
        ));
        assert_eq!(
            m.decide(IMG, PullPolicy::Always, false, t(30)),
            Decision::Pull
        );
        m.succeeded(IMG, t(30));
        m.failed(IMG, "third", t(31));
        assert_eq!(
            m.decide(IMG, PullPolicy::Always, false, t(41)),
            Decision::Pull,
            "reset by the success"
        );
    }

    #[test]
    fn pull_credentials_follow_the_keyring() {
        let mut k = Keyring::new();
        k.add_docker_config(
            br#"{"auths": {"registry.example": {"username": "u", "password": "p"}}}"#,
            "secret",
        )
        .unwrap();
        let creds = pull_credentials(&k, IMG);
        assert_eq!(creds.len(), 1);
        assert_eq!(
            (creds[0].username.as_str(), creds[0].password.as_str()),
            ("u", "p")
        );
        assert_eq!(creds[0].server_address, "registry.example");
        assert!(pull_credentials(&k, "docker.io/library/busybox").is_empty());
    }
}
