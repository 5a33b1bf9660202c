//! The store's promises, checked against every backend: SQLite always, PostgreSQL when
//! `APPSTART_TEST_POSTGRES` names a database (skipped with a message outside CI, a failure
//! in CI, where `.ci/run` starts one). Each test uses its own app name, so runs sharing one
//! PostgreSQL database do not see each other's receipts.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a test failure with a backtrace"
)]

use updater_core::advanced::receipts::{Batch, Receipt, ReceiptEvent};

use crate::store::{ReleaseQuery, Store, open};

fn unique_app(name: &str) -> String {
    let mut random = [0u8; 4];
    getrandom_fill(&mut random);
    format!(
        "{name}-{}",
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn getrandom_fill(bytes: &mut [u8]) {
    // A receipt id is random; borrow its bytes.
    let id = Receipt::new(&"0".repeat(32), "x", "stable", "any", ReceiptEvent::Checked).id;
    for (byte, pair) in bytes.iter_mut().zip(id.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
    }
}

pub(crate) fn install(n: u32) -> String {
    format!("{n:032x}")
}

pub(crate) fn receipt(
    app: &str,
    install: &str,
    event: ReceiptEvent,
    from: Option<&str>,
    to: Option<&str>,
    second: u32,
) -> Receipt {
    let mut receipt = Receipt::new(install, app, "stable", "linux-x86_64", event);
    receipt.from = from.map(str::to_string);
    receipt.to = to.map(str::to_string);
    receipt.at = format!("2026-12-01T10:{:02}:{:02}Z", second / 60, second % 60);
    receipt
}

/// The stores to test: SQLite in `dir`, and PostgreSQL when configured.
fn stores(dir: &std::path::Path) -> Vec<Box<dyn Store>> {
    let mut stores = vec![open(dir.join("fleet.db").to_str().unwrap()).unwrap()];
    match std::env::var("APPSTART_TEST_POSTGRES") {
        Ok(url) => stores.push(open(&url).unwrap()),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "APPSTART_TEST_POSTGRES is not set; .ci/run starts PostgreSQL and sets it"
            );
            eprintln!("SKIPPED: APPSTART_TEST_POSTGRES is not set - PostgreSQL store not tested");
        }
    }
    stores
}

#[test]
fn a_batch_posted_twice_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(dir.path()) {
        let app = unique_app("idem");
        let batch = Batch::new(
            vec![
                receipt(
                    &app,
                    &install(1),
                    ReceiptEvent::Found,
                    Some("1.0.0"),
                    Some("2.0.0"),
                    1,
                ),
                receipt(
                    &app,
                    &install(1),
                    ReceiptEvent::Downloaded,
                    Some("1.0.0"),
                    Some("2.0.0"),
                    2,
                ),
            ],
            3,
        );
        let first = store.insert_batch(&batch).unwrap();
        assert_eq!((first.inserted, first.duplicates), (2, 0), "{store:?}");
        let again = store.insert_batch(&batch).unwrap();
        assert_eq!((again.inserted, again.duplicates), (0, 2), "{store:?}");
        let summary = store.summary(Some(&app)).unwrap();
        assert_eq!(summary.installs, 1);
        assert_eq!(
            summary.dropped, 3,
            "the retried batch's dropped count is counted once"
        );
        assert_eq!(summary.releases[0].found, 1);
    }
}

#[test]
fn counts_installs_not_receipts() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(dir.path()) {
        let app = unique_app("distinct");
        let mut receipts = Vec::new();
        for n in 0..3 {
            for second in 0..4 {
                receipts.push(receipt(
                    &app,
                    &install(n),
                    ReceiptEvent::Found,
                    Some("1.0.0"),
                    Some("2.0.0"),
                    second,
                ));
            }
        }
        receipts.push(receipt(
            &app,
            &install(0),
            ReceiptEvent::Failed,
            Some("1.0.0"),
            Some("2.0.0"),
            9,
        ));
        receipts.last_mut().unwrap().error = Some("network".into());
        receipts.push(receipt(
            &app,
            &install(0),
            ReceiptEvent::Failed,
            Some("1.0.0"),
            Some("2.0.0"),
            10,
        ));
        receipts.last_mut().unwrap().error = Some("network".into());
        store.insert_batch(&Batch::new(receipts, 0)).unwrap();
        let summary = store.summary(Some(&app)).unwrap();
        assert_eq!(summary.installs, 3, "{store:?}");
        assert_eq!(summary.by_version.get("1.0.0"), Some(&3));
        let release = &summary.releases[0];
        assert_eq!(
            (release.version.as_str(), release.found, release.failed),
            ("2.0.0", 3, 1)
        );
        assert_eq!(release.failed_by_error.get("network"), Some(&1));
        assert_eq!(summary.releases.len(), 1);
    }
}

#[test]
fn the_current_version_comes_from_the_newest_receipt() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(dir.path()) {
        let app = unique_app("current");
        let (a, b, c) = (install(1), install(2), install(3));
        // a: switched to 3.0.0, then fell back to 2.0.0 in the same second (arrival order
        // decides). b: found 3.0.0 but has not switched: still on 2.0.0. c: its newest
        // receipt was posted first (in an earlier batch), with a later time: time decides.
        store
            .insert_batch(&Batch::new(
                vec![receipt(
                    &app,
                    &c,
                    ReceiptEvent::Switched,
                    Some("2.0.0"),
                    Some("3.0.0"),
                    50,
                )],
                0,
            ))
            .unwrap();
        store
            .insert_batch(&Batch::new(
                vec![
                    receipt(
                        &app,
                        &a,
                        ReceiptEvent::Switched,
                        Some("2.0.0"),
                        Some("3.0.0"),
                        10,
                    ),
                    receipt(
                        &app,
                        &a,
                        ReceiptEvent::FellBack,
                        Some("3.0.0"),
                        Some("2.0.0"),
                        10,
                    ),
                    receipt(&app, &b, ReceiptEvent::Checked, Some("2.0.0"), None, 5),
                    receipt(
                        &app,
                        &b,
                        ReceiptEvent::Found,
                        Some("2.0.0"),
                        Some("3.0.0"),
                        6,
                    ),
                    receipt(&app, &c, ReceiptEvent::Checked, Some("1.0.0"), None, 1),
                ],
                0,
            ))
            .unwrap();
        let summary = store.summary(Some(&app)).unwrap();
        assert_eq!(
            summary.by_version.get("2.0.0"),
            Some(&2),
            "{store:?}: {summary:?}"
        );
        assert_eq!(
            summary.by_version.get("3.0.0"),
            Some(&1),
            "{store:?}: {summary:?}"
        );
        let last = summary.timeline.last().unwrap();
        assert_eq!(last.by_version, summary.by_version);
        let health = store
            .release_health(&ReleaseQuery {
                app: app.clone(),
                version: "3.0.0".into(),
                ..ReleaseQuery::default()
            })
            .unwrap();
        assert_eq!((health.reached, health.bad), (2, 1), "{store:?}");
    }
}

#[test]
fn bad_batches_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(dir.path()) {
        let app = unique_app("bad");
        let good = receipt(
            &app,
            &install(1),
            ReceiptEvent::Found,
            None,
            Some("2.0.0"),
            1,
        );
        let mut bad = receipt(
            &app,
            &install(2),
            ReceiptEvent::Found,
            None,
            Some("2.0.0"),
            1,
        );
        bad.install_id = "alice@laptop".into();
        let error = store
            .insert_batch(&Batch::new(vec![good.clone(), bad], 0))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("receipts[1]") && error.contains("install_id"),
            "{error}"
        );
        let mut huge = good.clone();
        huge.id = "f".repeat(32);
        huge.bytes = u64::MAX;
        let error = store
            .insert_batch(&Batch::new(vec![huge], 0))
            .unwrap_err()
            .to_string();
        assert!(error.contains("bytes"), "{error}");
        let many = vec![good.clone(); updater_core::advanced::receipts::MAX_BATCH + 1];
        assert!(store.insert_batch(&Batch::new(many, 0)).is_err());
        assert_eq!(
            store.summary(Some(&app)).unwrap().installs,
            0,
            "nothing stored"
        );
    }
}

#[test]
fn the_receiver_answers_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path().join("fleet.db").to_str().unwrap()).unwrap();
    let receiver = crate::Receiver::new(std::sync::Arc::from(store));
    let (status, body) = receiver.receive(br#"{"receipts": [{"id": "x"}]}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("install_id"), "{body}");
    let mut receipt = receipt(
        "demo",
        &install(1),
        ReceiptEvent::Found,
        None,
        Some("2.0.0"),
        1,
    );
    receipt.at = "yesterday".into();
    let body_json = serde_json::to_vec(&Batch::new(vec![receipt], 0)).unwrap();
    let (status, body) = receiver.receive(&body_json);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("receipts[0]: at"), "{body}");
}
