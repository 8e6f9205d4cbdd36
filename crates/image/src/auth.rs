//! The node's registry credentials from files: a Docker `config.json` read into the keyring
//! that `peapod-types` defines (where the matching rules live).

use std::path::Path;

pub use peapod_types::credentials::{Credential, Keyring};

use crate::{Error, IoContext, Result};

/// Adds the credentials of the Docker config file at `path` to `keyring`, if it exists.
pub fn add_docker_config_file(keyring: &mut Keyring, path: &Path) -> Result<()> {
    match std::fs::read(path) {
        Ok(data) => keyring
            .add_docker_config(&data, &path.display().to_string())
            .map_err(|e| Error::Format(e.0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at("reading credentials", path),
    }
}
