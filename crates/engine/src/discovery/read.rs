//! Typed reads: a kernel path plus a parser, with the path attached to any parse error.

use daxplug_abi::ParseError;
use daxplug_kernel::Kernel;

use crate::discovery::error::DiscoveryError;

/// Reads `path` and parses it.
pub(crate) fn parse<T>(
    k: &dyn Kernel,
    path: &str,
    parser: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<T, DiscoveryError> {
    let text = k.read(path)?;
    parser(&text).map_err(|source| DiscoveryError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Like [`parse`], but a missing file (`ENOENT`) is `None`: for attributes that only some
/// kernels or configurations have.
pub(crate) fn parse_optional<T>(
    k: &dyn Kernel,
    path: &str,
    parser: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<Option<T>, DiscoveryError> {
    match k.read(path) {
        Ok(text) => parser(&text)
            .map(Some)
            .map_err(|source| DiscoveryError::Parse {
                path: path.to_owned(),
                source,
            }),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
