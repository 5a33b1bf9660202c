//! Tests of the pack fetch: the waste budget of bridged gaps, and how each kind of server
//! answer to requests for several ranges is read (a transport here plays the server).

use std::collections::HashMap;
use std::sync::Mutex;

use appstart_layout::InstallDir;

use super::{PACK_GAP, Slice, bridged_gaps};
use crate::error::Result;
use crate::stage::Stager;
use crate::transport::{Request, Response, Status, Transport};

fn slices(count: u64, size: u64, gap: u64) -> Vec<Slice<'static>> {
    (0..count)
        .map(|i| Slice {
            offset: i * (size + gap),
            size,
            blob_blake3: "",
            content: "",
        })
        .collect()
}

#[test]
fn small_gaps_are_bridged_within_the_waste_budget() {
    // Neighbours with small gaps: one range.
    assert!(
        bridged_gaps(&slices(10, 1000, 100))
            .iter()
            .skip(1)
            .all(|j| *j)
    );
    // 100 slices of 2,000 bytes, 2,000 apart: 200,000 needed, so at most 20,000 + 16 KiB
    // of gaps are fetched (18 gaps), not 198,000.
    let joined = bridged_gaps(&slices(100, 2000, 2000));
    assert_eq!(joined.iter().filter(|j| **j).count(), 18);
    assert!(!joined[0]);
    // A gap over PACK_GAP is never bridged, whatever the budget.
    let far = bridged_gaps(&slices(4, 10 << 20, PACK_GAP + 1));
    assert!(far.iter().all(|j| !*j));
}
/// How the test server answers a request for several ranges (one range is always answered
/// with 206 and that range).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answers {
    /// In parts, in the order asked.
    Parts,
    /// In parts, last range first.
    Reversed,
    /// In parts, each two neighbouring ranges coalesced into one part (gap included).
    Coalesced,
    /// In parts, all but the last range asked for.
    MissingLast,
    /// One range: the first asked for.
    FirstOnly,
    /// One range, the first asked for, with no `Content-Length` (chunked).
    FirstOnlyChunked,
    /// 200 and the whole pack.
    Whole,
    /// 200 and the whole pack, to one range too after the first.
    WholeAfterFirst,
}

#[derive(Debug)]
struct Server {
    pack: Vec<u8>,
    answers: Answers,
    /// The ranges of each request.
    requests: Mutex<Vec<Vec<(u64, u64)>>>,
}

impl Transport for Server {
    fn get(&self, _url: &str, request: &Request) -> Result<Response> {
        let first = (
            request.range_start.unwrap_or(0),
            request.range_end.unwrap_or(0),
        );
        let ranges: Vec<(u64, u64)> = std::iter::once(first)
            .chain(request.more_ranges.iter().copied())
            .collect();
        let singles_before = {
            let mut requests = self.requests.lock().unwrap();
            requests.push(ranges.clone());
            requests.iter().filter(|r| r.len() == 1).count() - usize::from(ranges.len() == 1)
        };
        let whole = || Response {
            status: Status::Full,
            content_length: Some(self.pack.len() as u64),
            range_start: None,
            etag: None,
            multipart_boundary: None,
            body: Box::new(std::io::Cursor::new(self.pack.clone())),
        };
        let bytes = |(a, b): (u64, u64)| self.pack[a as usize..=b as usize].to_vec();
        let single = |range: (u64, u64)| Response {
            status: Status::Partial,
            content_length: Some(range.1 - range.0 + 1),
            range_start: Some(range.0),
            etag: None,
            multipart_boundary: None,
            body: Box::new(std::io::Cursor::new(bytes(range))),
        };
        if ranges.len() == 1 {
            if self.answers == Answers::WholeAfterFirst && singles_before > 0 {
                return Ok(whole());
            }
            return Ok(single(first));
        }
        let parts: Vec<(u64, u64)> = match self.answers {
            Answers::Parts => ranges,
            Answers::Reversed => ranges.into_iter().rev().collect(),
            Answers::Coalesced => ranges
                .chunks(2)
                .map(|pair| (pair[0].0, pair[pair.len() - 1].1))
                .collect(),
            Answers::MissingLast => ranges[..ranges.len() - 1].to_vec(),
            Answers::FirstOnly => return Ok(single(first)),
            Answers::FirstOnlyChunked => {
                return Ok(Response {
                    content_length: None,
                    ..single(first)
                });
            }
            Answers::Whole | Answers::WholeAfterFirst => return Ok(whole()),
        };
        let mut body = Vec::new();
        for (a, b) in parts {
            body.extend_from_slice(
                format!(
                    "\r\n--XX\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                    self.pack.len()
                )
                .as_bytes(),
            );
            body.extend_from_slice(&bytes((a, b)));
        }
        body.extend_from_slice(b"\r\n--XX--\r\n");
        Ok(Response {
            status: Status::Partial,
            content_length: Some(body.len() as u64),
            range_start: None,
            etag: None,
            multipart_boundary: Some("XX".into()),
            body: Box::new(std::io::Cursor::new(body)),
        })
    }
}

/// 300 slices of 100 bytes, 50 apart, each a run of its own: three batches of several ranges.
/// Every slice reaches the sink exactly once whatever the server does, in the requests each
/// kind of answer should cost.
#[test]
fn every_kind_of_answer_to_several_ranges_serves_each_slice_once() {
    const COUNT: usize = 300;
    let pack: Vec<u8> = (0..COUNT * 150).map(|i| (i * 7 % 251) as u8).collect();
    let hashes: Vec<String> = (0..COUNT)
        .map(|i| {
            blake3::hash(&pack[i * 150..i * 150 + 100])
                .to_hex()
                .to_string()
        })
        .collect();
    let names: Vec<String> = (0..COUNT).map(|i| format!("content-{i}")).collect();
    let needed: Vec<Slice<'_>> = (0..COUNT)
        .map(|i| Slice {
            offset: (i * 150) as u64,
            size: 100,
            blob_blake3: &hashes[i],
            content: &names[i],
        })
        .collect();
    let runs: Vec<(usize, usize)> = (0..COUNT).map(|i| (i, i + 1)).collect();
    for (answers, requests) in [
        (Answers::Parts, 3),
        (Answers::Reversed, 3),
        (Answers::Coalesced, 3),
        // Each batch's last run left out, then asked for on its own.
        (Answers::MissingLast, 3 + 3),
        // The first batch's first range, then one request per other run.
        (Answers::FirstOnly, COUNT),
        (Answers::FirstOnlyChunked, COUNT),
        // The dropped whole pack, then one request per run.
        (Answers::Whole, 1 + COUNT),
        // Each later single range answered with the whole pack serves its own run, and the
        // others go on.
        (Answers::WholeAfterFirst, 1 + COUNT),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let install = InstallDir::new(dir.path());
        let server = Server {
            pack: pack.clone(),
            answers,
            requests: Mutex::default(),
        };
        let stager = Stager {
            install: &install,
            transport: &server,
            repo_url: "http://test",
            retry: crate::download::RetryPolicy::default(),
            progress: None,
            pack_data_start: 0,
            opened_pack: Mutex::new(None),
        };
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let taken: Mutex<HashMap<String, usize>> = Mutex::default();
        let mut sink = |slice: &Slice<'_>, bytes: &[u8]| -> Result<bool> {
            assert_eq!(bytes.len(), 100);
            *taken
                .lock()
                .unwrap()
                .entry(slice.content.to_string())
                .or_default() += 1;
            Ok(true)
        };
        let (received, made) = stager
            .fetch_runs(
                "http://test/p.pack",
                pack.len() as u64,
                &needed,
                &runs,
                &cache,
                &mut sink,
            )
            .unwrap();
        let taken = taken.into_inner().unwrap();
        assert_eq!(taken.len(), COUNT, "{answers:?}");
        assert!(taken.values().all(|n| *n == 1), "{answers:?}");
        let logged = server.requests.lock().unwrap().len();
        assert_eq!((made, logged), (requests, requests), "{answers:?}");
        assert!(received >= (COUNT * 100) as u64, "{answers:?}: {received}");
        // Nothing was left in the cache: every slice went to the sink.
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0, "{answers:?}");
    }
}
