//! A server-sent events parser for push announcements, with caps.
//!
//! Why its own parser: the stream comes from a server the client does not trust, and it stays
//! open for hours, so nothing it sends may grow memory. A line is at most [`MAX_LINE`] bytes
//! and an event's data at most [`MAX_EVENT`]; anything over a cap, a line that is not UTF-8,
//! or an announcement that is not the expected JSON is an error, and the caller drops the
//! connection (and reconnects later with backoff).
//!
//! The format is the WHATWG one, reduced to what a push needs: lines end with LF, CRLF or CR;
//! a line starting with `:` is a comment (servers send one as a keep-alive); `data:` lines
//! are joined with LF; `event:` names the event; an empty line dispatches it. Events named
//! other than `timestamp` (or unnamed) are ignored, as are the `id` and `retry` fields and
//! unknown ones, so a server may add its own. The data of a `timestamp` event is a JSON
//! object with `timestamp_version` (other members are ignored).

use serde::Deserialize;

/// Longest line accepted, in bytes.
pub const MAX_LINE: usize = 4096;

/// Most data bytes in one event.
pub const MAX_EVENT: usize = 4096;

/// One announcement: the repository's timestamp role now has this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Announcement {
    /// The announced version of `timestamp.json`.
    pub timestamp_version: u64,
}

/// Splits a byte stream into announcements. Feed it whatever the socket gave.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    data: Vec<u8>,
    event: Option<String>,
    /// The previous line ended with CR: a LF right after it belongs to it.
    after_cr: bool,
    /// Whether the first bytes were seen (a leading BOM is skipped).
    started: bool,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Parser::default()
    }

    /// Parses `bytes`, returning the announcements completed in them, or why the stream is
    /// unusable (the caller drops the connection).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Vec<Announcement>, String> {
        if !self.started && !bytes.is_empty() {
            self.started = true;
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        let mut found = Vec::new();
        for &byte in bytes {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    if let Some(announcement) = self.end_line()? {
                        found.push(announcement);
                    }
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= MAX_LINE {
                        return Err(format!("a line longer than {MAX_LINE} bytes"));
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(found)
    }

    fn end_line(&mut self) -> Result<Option<Announcement>, String> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            return self.dispatch();
        }
        let line = String::from_utf8(line).map_err(|_| "a line that is not UTF-8".to_string())?;
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                if !self.data.is_empty() {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value.as_bytes());
                if self.data.len() > MAX_EVENT {
                    return Err(format!("an event with more than {MAX_EVENT} bytes of data"));
                }
            }
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Result<Option<Announcement>, String> {
        let data = std::mem::take(&mut self.data);
        let event = self.event.take();
        if data.is_empty() || event.as_deref().is_some_and(|name| name != "timestamp") {
            return Ok(None);
        }
        serde_json::from_slice::<Announcement>(&data)
            .map(Some)
            .map_err(|e| format!("an announcement that is not {{\"timestamp_version\": N}}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(found: Vec<Announcement>) -> Vec<u64> {
        found.iter().map(|a| a.timestamp_version).collect()
    }

    #[test]
    fn announcements_comments_and_line_endings() {
        let mut parser = Parser::new();
        let stream = b"\xEF\xBB\xBF: keep-alive\n\ndata: {\"timestamp_version\": 7}\n\n\
            event: timestamp\r\ndata:{\"timestamp_version\":8,\"extra\":1}\r\n\r\n\
            event: other\ndata: anything\n\nid: 3\nretry: 10\nfuture: x\n\n\
            data: {\"timestamp_version\": 9}\r\r";
        assert_eq!(versions(parser.feed(stream).unwrap()), [7, 8, 9]);
    }

    #[test]
    fn an_event_split_across_reads_and_data_lines_is_joined() {
        let stream = b"data: {\"timestamp_version\":\ndata: 12}\r\n\r\n";
        for size in [1, 3, stream.len()] {
            let mut parser = Parser::new();
            let mut found = Vec::new();
            for chunk in stream.chunks(size) {
                found.extend(parser.feed(chunk).unwrap());
            }
            assert_eq!(versions(found), [12], "reads of {size} bytes");
        }
    }

    #[test]
    fn caps_and_garbage_are_errors() {
        let endless = vec![b'a'; MAX_LINE + 1];
        assert!(Parser::new().feed(&endless).is_err(), "an endless line");
        let mut parser = Parser::new();
        let line = format!("data: {}\n", "x".repeat(MAX_LINE - 10));
        let mut result = Ok(Vec::new());
        for _ in 0..3 {
            result = parser.feed(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert!(result.is_err(), "data over MAX_EVENT");
        assert!(Parser::new().feed(b"data: not json\n\n").is_err());
        assert!(
            Parser::new()
                .feed(b"data: {\"timestamp_version\": -1}\n\n")
                .is_err()
        );
        assert!(Parser::new().feed(b"data: \xff\xfe\n\n").is_err());
        // Exactly at the cap is fine.
        let at_cap = vec![b':'; MAX_LINE];
        assert!(Parser::new().feed(&at_cap).unwrap().is_empty());
    }
}
