//! The result channel as it arrives: bytes → records. Tolerant by design: a guest may die in the
//! middle of a line, or a line may be garbled; such lines are kept raw, never fatal.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use zcmatrix_protocol::Record;

// Nearly every line is a record: boxing it would cost an allocation per line to save memory
// only on the rare raw ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Record(Record),
    /// A line that is not a record, kept for the report's detail.
    Raw(String),
}

pub fn parse_line(line: &str) -> Option<Item> {
    let line = line.trim_matches(|c: char| c == '\r' || c == '\n' || c == '\0');
    if line.trim().is_empty() {
        return None;
    }
    Some(match serde_json::from_str::<Record>(line) {
        Ok(r) => Item::Record(r),
        Err(_) => Item::Raw(line.to_string()),
    })
}

/// Follows a file that QEMU is still writing.
pub struct Follower {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Follower {
    pub fn new(path: &Path) -> Follower {
        Follower {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// Complete lines that arrived since the last call.
    pub fn poll(&mut self) -> Vec<Item> {
        let Ok(mut f) = File::open(&self.path) else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            out.extend(parse_line(&String::from_utf8_lossy(&line)));
        }
        out
    }

    /// Everything left, including an unterminated last line.
    pub fn finish(mut self) -> Vec<Item> {
        let mut out = self.poll();
        let rest = std::mem::take(&mut self.partial);
        out.extend(parse_line(&String::from_utf8_lossy(&rest)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn garbage_and_truncated_lines_are_kept_raw() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.jsonl");
        let mut f = File::create(&p).unwrap();
        let mut fol = Follower::new(&p);
        assert!(fol.poll().is_empty());
        write!(
            f,
            "{{\"type\":\"error\",\"message\":\"boom\"}}\r\nnot json\n{{\"type\":\"summ"
        )
        .unwrap();
        let got = fol.poll();
        assert_eq!(
            got,
            [
                Item::Record(Record::Error {
                    message: "boom".into()
                }),
                Item::Raw("not json".into())
            ]
        );
        assert_eq!(fol.finish(), [Item::Raw("{\"type\":\"summ".into())]);
    }

    #[test]
    fn a_line_split_across_polls_is_joined() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.jsonl");
        let mut f = File::create(&p).unwrap();
        let mut fol = Follower::new(&p);
        write!(f, "{{\"type\":\"error\",").unwrap();
        assert!(fol.poll().is_empty());
        writeln!(f, "\"message\":\"x\"}}").unwrap();
        assert_eq!(
            fol.poll(),
            [Item::Record(Record::Error {
                message: "x".into()
            })]
        );
    }
}
