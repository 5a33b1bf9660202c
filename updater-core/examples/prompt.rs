//! An app that asks its user before it updates: [`Updater::on_found`] is asked before a found
//! release is downloaded, and answers [`Decision::Accept`] or [`Decision::Skip`] (a GUI app
//! would show a dialog; this one reads a line from standard input). A critical release is
//! taken without asking: the publisher marked it as a fix that must not wait.
//!
//! Started by the `appstart` launcher. Tested end to end by `tests/examples.rs`.

use std::io::BufRead;

use updater_core::{Decision, Offer, Updater};

fn ask(offer: &Offer) -> Decision {
    if offer.critical {
        println!("installing critical update {}", offer.version);
        return Decision::Accept;
    }
    println!(
        "version {} is available (you have {}). Install it now? [y/N]",
        offer.version, offer.current
    );
    let mut answer = String::new();
    // No answer (closed input) is a no.
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim().eq_ignore_ascii_case("y") {
        Decision::Accept
    } else {
        Decision::Skip
    }
}

fn main() -> Result<(), updater_core::Error> {
    let mut updater = Updater::from_launcher_environment()?;
    updater.on_found(ask);
    let report = updater.update()?;
    match &report.to {
        Some(version) => println!("updated to {version}; it starts next time"),
        None => println!("no update taken"),
    }
    Ok(())
}
