//! Platforms where the connection cost is not detected (macOS: see the module docs).

use super::Cost;

pub(super) fn current() -> Cost {
    Cost::Unknown("not detected on this platform".into())
}
