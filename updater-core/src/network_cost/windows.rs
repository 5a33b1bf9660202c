//! Windows: the connection cost of the internet connection profile (WinRT
//! `Windows.Networking.Connectivity`). Under Wine the API is missing: "unknown".

use windows::Networking::Connectivity::{NetworkCostType, NetworkInformation};

use super::Cost;

pub(super) fn current() -> Cost {
    match metered() {
        Ok(true) => Cost::Metered,
        Ok(false) => Cost::Unmetered,
        Err(e) => Cost::Unknown(format!("asking Windows for the connection cost: {e}")),
    }
}

fn metered() -> windows::core::Result<bool> {
    let profile = NetworkInformation::GetInternetConnectionProfile()?;
    let cost = profile.GetConnectionCost()?;
    let kind = cost.NetworkCostType()?;
    Ok(kind == NetworkCostType::Fixed
        || kind == NetworkCostType::Variable
        || cost.Roaming()?
        || cost.OverDataLimit()?)
}
