//! Windows: the connection cost of the internet connection profile (WinRT
//! `Windows.Networking.Connectivity`).
//!
//! Under Wine (8.0) `windows.networking.dll` exists but its `DllGetActivationFactory` is an
//! unimplemented stub that raises an exception and ends the process: so Wine is detected
//! first (ntdll exports `wine_get_version`) and answered "unknown" without the call.

use windows::Networking::Connectivity::{NetworkCostType, NetworkInformation};

use super::Cost;

pub(super) fn current() -> Cost {
    if under_wine() {
        return Cost::Unknown("Wine has no connection cost API".into());
    }
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

/// Whether this process runs under Wine: its ntdll exports `wine_get_version`.
fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: both names are NUL-terminated static strings; ntdll is loaded in every
    // process, and a null handle is checked before it is used.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}
