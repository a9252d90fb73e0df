//! The sketches of a streamed image's pages, kept in a file (or memory) as they are made, and
//! read back by scanning: memory stays the same whatever the image's size.
//!
//! ```text
//! record   u32 length of the rest | u64 page id | u8 kind | body
//! branch   kind 1: u32 n | n x u64 child
//! leaf     kind 2: u8 last key (0 none, 1 some, 2 outside the page) | u32 len | key
//!                  | u32 m | m x (u32 len | bucket name | u32 len | bucket value)
//! ```

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// Longest record kept: a leaf's captured bytes (at most the capture budget) with its length
/// fields, or a branch's children (at most 65,535), each well below a MiB of overhead.
const MAX_RECORD: usize = super::CAPTURE_BUDGET + (1 << 20);

/// A nested bucket's name and value (header and inline page).
type BucketEntry = (Vec<u8>, Vec<u8>);

/// What a page tells about the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sketch {
    Branch(Vec<u64>),
    Leaf {
        /// `Err` when the last element lies outside the page (damage, or a span never completed).
        last_key: Result<Option<Vec<u8>>, ()>,
        buckets: Vec<BucketEntry>,
    },
}

#[derive(Debug)]
enum Store {
    Memory(Vec<u8>),
    File(BufWriter<File>),
}

/// Where the sketches go; [`Sketches::scan`] reads them back in the order they were kept.
#[derive(Debug)]
pub(super) struct Sketches {
    store: Store,
    /// The first write that failed: the file then lacks sketches.
    failed: Option<String>,
    record: Vec<u8>,
}

impl Sketches {
    pub fn in_memory() -> Self {
        Self {
            store: Store::Memory(Vec::new()),
            failed: None,
            record: Vec::new(),
        }
    }

    pub fn in_file(mut file: File) -> Self {
        // Whatever the file held is not read back as sketches.
        let failed = file.set_len(0).and_then(|()| file.rewind()).err();
        Self {
            store: Store::File(BufWriter::with_capacity(64 << 10, file)),
            failed: failed.map(|e| e.to_string()),
            record: Vec::new(),
        }
    }

    pub fn keep(&mut self, id: u64, sketch: &Sketch) {
        let record = &mut self.record;
        record.clear();
        record.extend_from_slice(&[0; 4]);
        record.extend_from_slice(&id.to_le_bytes());
        match sketch {
            Sketch::Branch(children) => {
                record.push(1);
                put_len(record, children.len());
                for child in children {
                    record.extend_from_slice(&child.to_le_bytes());
                }
            }
            Sketch::Leaf { last_key, buckets } => {
                record.push(2);
                match last_key {
                    Ok(None) => record.push(0),
                    Ok(Some(key)) => {
                        record.push(1);
                        put_bytes(record, key);
                    }
                    Err(()) => record.push(2),
                }
                put_len(record, buckets.len());
                for (name, value) in buckets {
                    put_bytes(record, name);
                    put_bytes(record, value);
                }
            }
        }
        let rest = (record.len() - 4) as u32;
        record[..4].copy_from_slice(&rest.to_le_bytes());
        match &mut self.store {
            Store::Memory(bytes) => bytes.extend_from_slice(record),
            Store::File(file) => {
                if self.failed.is_none()
                    && let Err(error) = file.write_all(record)
                {
                    self.failed = Some(error.to_string());
                }
            }
        }
    }

    /// Calls `visit` with every kept sketch of a page in `wanted`; a scan of everything kept.
    pub fn scan(
        &mut self,
        wanted: &dyn Fn(u64) -> bool,
        visit: &mut dyn FnMut(u64, Sketch),
    ) -> Result<(), String> {
        if let Some(failed) = &self.failed {
            return Err(format!(
                "the page sketches could not be kept in the temporary file ({failed}); free space in TMPDIR or point TMPDIR elsewhere"
            ));
        }
        match &mut self.store {
            Store::Memory(bytes) => scan_records(&mut bytes.as_slice(), wanted, visit),
            Store::File(file) => {
                let read_back = |e: std::io::Error| format!("the page sketches could not be read back: {e}");
                file.flush().map_err(read_back)?;
                let file = file.get_mut();
                file.seek(SeekFrom::Start(0)).map_err(read_back)?;
                let scanned =
                    scan_records(&mut BufReader::with_capacity(64 << 10, &mut *file), wanted, visit);
                file.seek(SeekFrom::End(0)).map_err(read_back)?;
                scanned
            }
        }
    }
}

fn put_len(record: &mut Vec<u8>, len: usize) {
    record.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_bytes(record: &mut Vec<u8>, bytes: &[u8]) {
    put_len(record, bytes.len());
    record.extend_from_slice(bytes);
}

fn scan_records(
    reader: &mut dyn Read,
    wanted: &dyn Fn(u64) -> bool,
    visit: &mut dyn FnMut(u64, Sketch),
) -> Result<(), String> {
    let unreadable = |e: std::io::Error| format!("the page sketches could not be read back: {e}");
    let mut body = Vec::new();
    loop {
        let mut len = [0; 4];
        match reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(unreadable(e)),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_RECORD {
            return Err(format!("a page sketch is {len} bytes long, more than any kept"));
        }
        body.resize(len, 0);
        reader.read_exact(&mut body).map_err(unreadable)?;
        let mut fields = Fields(&body);
        let id = fields.u64().ok_or_else(|| "a page sketch is short".to_string())?;
        if !wanted(id) {
            continue;
        }
        let sketch = fields
            .sketch()
            .ok_or_else(|| format!("the sketch of page {id} is short"))?;
        visit(id, sketch);
    }
}

/// Reads a record's fields in order.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn len(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.len()?;
        Some(self.take(len)?.to_vec())
    }

    fn sketch(&mut self) -> Option<Sketch> {
        match self.take(1)?[0] {
            1 => {
                let n = self.len()?;
                Some(Sketch::Branch((0..n).map(|_| self.u64()).collect::<Option<_>>()?))
            }
            2 => {
                let last_key = match self.take(1)?[0] {
                    0 => Ok(None),
                    1 => Ok(Some(self.bytes()?)),
                    _ => Err(()),
                };
                let m = self.len()?;
                let buckets = (0..m)
                    .map(|_| Some((self.bytes()?, self.bytes()?)))
                    .collect::<Option<_>>()?;
                Some(Sketch::Leaf { last_key, buckets })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_kept_from_memory_and_from_a_file() {
        let sketches = [
            (3, Sketch::Branch(vec![4, 9, 1 << 40])),
            (
                4,
                Sketch::Leaf {
                    last_key: Ok(Some(b"k9".to_vec())),
                    buckets: vec![(b"key".to_vec(), vec![1, 2, 3])],
                },
            ),
            (
                5,
                Sketch::Leaf {
                    last_key: Ok(None),
                    buckets: vec![],
                },
            ),
            (
                6,
                Sketch::Leaf {
                    last_key: Err(()),
                    buckets: vec![],
                },
            ),
        ];
        let file = tempfile::tempfile().unwrap();
        for mut store in [Sketches::in_memory(), Sketches::in_file(file)] {
            for (id, sketch) in &sketches {
                store.keep(*id, sketch);
            }
            for _ in 0..2 {
                let mut seen = Vec::new();
                store
                    .scan(&|id| id != 5, &mut |id, s| seen.push((id, s)))
                    .unwrap();
                let expected: Vec<_> = sketches.iter().filter(|(id, _)| *id != 5).cloned().collect();
                assert_eq!(seen, expected);
            }
        }
    }
}
