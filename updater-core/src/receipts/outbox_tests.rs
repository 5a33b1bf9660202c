use super::*;
use crate::receipts::ReceiptEvent;

fn receipt(n: u64) -> Receipt {
    let mut receipt = Receipt::new(
        "0123456789abcdef0123456789abcdef",
        "demo",
        "stable",
        "any",
        ReceiptEvent::Checked,
    );
    receipt.bytes = n;
    receipt
}

fn outbox() -> (tempfile::TempDir, Outbox) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::new(dir.path().join("state/receipts.jsonl"));
    (dir, outbox)
}

fn numbers(pending: &Pending) -> Vec<u64> {
    pending.receipts.iter().map(|r| r.bytes).collect()
}

#[test]
fn receipts_come_back_in_the_order_they_were_appended() {
    let (_dir, outbox) = outbox();
    assert_eq!(outbox.pending().unwrap(), Pending::default());
    for n in 0..5 {
        outbox.append(&receipt(n)).unwrap();
    }
    let pending = outbox.pending().unwrap();
    assert_eq!(numbers(&pending), vec![0, 1, 2, 3, 4]);
    assert_eq!(pending.dropped, 0);
}

#[test]
fn a_torn_last_line_is_skipped_and_the_next_append_is_kept() {
    let (_dir, outbox) = outbox();
    outbox.append(&receipt(1)).unwrap();
    outbox.append(&receipt(2)).unwrap();
    // A crash in the middle of the second append: half of its line is on disk.
    let bytes = std::fs::read(outbox.path()).unwrap();
    std::fs::write(outbox.path(), &bytes[..bytes.len() - 40]).unwrap();
    assert_eq!(numbers(&outbox.pending().unwrap()), vec![1]);
    outbox.append(&receipt(3)).unwrap();
    assert_eq!(numbers(&outbox.pending().unwrap()), vec![1, 3]);
}

#[test]
fn a_line_with_a_wrong_checksum_is_skipped() {
    let (_dir, outbox) = outbox();
    for n in 1..=3 {
        outbox.append(&receipt(n)).unwrap();
    }
    let text = std::fs::read_to_string(outbox.path()).unwrap();
    let second = text.lines().nth(1).unwrap();
    let changed = second.replace("\"bytes\":2", "\"bytes\":9");
    assert_ne!(second, changed);
    std::fs::write(outbox.path(), text.replace(second, &changed)).unwrap();
    assert_eq!(numbers(&outbox.pending().unwrap()), vec![1, 3]);
    std::fs::write(outbox.path(), b"garbage\n\x00\xff\n").unwrap();
    assert_eq!(outbox.pending().unwrap(), Pending::default());
}

#[test]
fn a_full_outbox_drops_the_oldest_and_counts_them() {
    let (_dir, outbox) = outbox();
    for n in 0..(MAX_RECEIPTS as u64 + 7) {
        outbox.append(&receipt(n)).unwrap();
    }
    let pending = outbox.pending().unwrap();
    assert_eq!(pending.receipts.len(), MAX_RECEIPTS);
    assert_eq!(pending.dropped, 7);
    assert_eq!(pending.receipts[0].bytes, 7, "the oldest went first");
    assert_eq!(
        pending.receipts.last().unwrap().bytes,
        MAX_RECEIPTS as u64 + 6
    );
    assert!(std::fs::metadata(outbox.path()).unwrap().len() <= MAX_BYTES as u64);
}

#[test]
fn the_byte_bound_holds_too() {
    let (_dir, outbox) = outbox();
    let mut big = receipt(0);
    big.error = Some("x".repeat(60));
    big.channel = "c".repeat(4000);
    for _ in 0..200 {
        outbox
            .append(&Receipt::new(
                &big.install_id,
                &big.app,
                &big.channel,
                &big.platform,
                big.event,
            ))
            .unwrap();
    }
    let pending = outbox.pending().unwrap();
    assert!(pending.dropped > 0);
    assert_eq!(pending.receipts.len() as u64 + pending.dropped, 200);
    assert!(std::fs::metadata(outbox.path()).unwrap().len() <= MAX_BYTES as u64);
}

#[test]
fn removing_posted_receipts_keeps_those_appended_meanwhile() {
    let (_dir, outbox) = outbox();
    for n in 0..(MAX_RECEIPTS as u64 + 2) {
        outbox.append(&receipt(n)).unwrap();
    }
    let batch = outbox.pending().unwrap();
    assert_eq!(batch.dropped, 2);
    // While the batch is being posted, two more receipts are written.
    outbox.append(&receipt(5000)).unwrap();
    outbox.append(&receipt(5001)).unwrap();
    let sent: BTreeSet<String> = batch.receipts.iter().map(|r| r.id.clone()).collect();
    outbox.remove(&sent, batch.dropped).unwrap();
    let left = outbox.pending().unwrap();
    assert_eq!(
        left.dropped, 2,
        "two more were dropped after the batch was read"
    );
    assert_eq!(numbers(&left), vec![5000, 5001]);
    let sent: BTreeSet<String> = left.receipts.iter().map(|r| r.id.clone()).collect();
    outbox.remove(&sent, left.dropped).unwrap();
    assert!(!outbox.path().exists(), "an empty outbox is no file");
}

#[test]
fn an_oversized_file_is_read_from_its_end() {
    let (_dir, outbox) = outbox();
    outbox.append(&receipt(1)).unwrap();
    let line = std::fs::read(outbox.path()).unwrap();
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < MAX_READ_BYTES + 10 {
        bytes.extend_from_slice(&line);
    }
    bytes.extend_from_slice(&encode(&Entry::Receipt(Box::new(receipt(2)))).unwrap());
    std::fs::write(outbox.path(), bytes).unwrap();
    let pending = outbox.pending().unwrap();
    assert_eq!(pending.receipts.last().unwrap().bytes, 2);
    assert!(pending.receipts.len() < 5000);
}
