//! A block of the audit log in memory ([`AuditBatch`]): records gathered as one body (their
//! compact JSON joined by `"\n"`) with what searches find the block by: its time range, its
//! number of records and its keys (patients, agents, altIds, each with how many records carry
//! it). The HTTP layer writes records straight into a batch (no per-record allocation); the
//! writer stores a batch as one row ([`crate::AuditStore::append_audit_batch`]); verification
//! rebuilds the batch of a stored block from its decoded records and compares the two.

// Keys are counted for every record on the request path: foldhash, not SipHash (the values
// are ids the server chose, and the map lives for one block).
use foldhash::HashMap;
use std::fmt;
use std::str::FromStr;

/// What a block is found by, besides time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditKey {
    /// A patient the record is about (id).
    Patient,
    /// The user's `who` reference.
    Agent,
    /// The user's `altId`.
    AltId,
}

impl AuditKey {
    const ALL: [AuditKey; 3] = [AuditKey::Patient, AuditKey::Agent, AuditKey::AltId];

    /// The prefix of this key's rows in `audit_block_key`.
    pub fn prefix(self) -> &'static str {
        match self {
            AuditKey::Patient => "patient|",
            AuditKey::Agent => "agent|",
            AuditKey::AltId => "altid|",
        }
    }

    fn slot(self) -> usize {
        match self {
            AuditKey::Patient => 0,
            AuditKey::Agent => 1,
            AuditKey::AltId => 2,
        }
    }

    /// The stored key of `value` (`patient|p1`).
    pub fn row(self, value: &str) -> String {
        format!("{}{value}", self.prefix())
    }
}

/// A record's id: the `index`-th record of `block` (`{block}` for the first, `{block}-{index}`
/// for the others, so a block of one keeps the number of the record it was in `audit_log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuditId {
    /// The block.
    pub block: i64,
    /// The record's place in the block, from 0.
    pub index: u32,
}

impl AuditId {
    /// The first record of a block.
    pub fn first(block: i64) -> AuditId {
        AuditId { block, index: 0 }
    }

    /// A bound after every record of a block.
    pub fn last(block: i64) -> AuditId {
        AuditId {
            block,
            index: u32::MAX,
        }
    }
}

impl fmt::Display for AuditId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index == 0 {
            write!(f, "{}", self.block)
        } else {
            write!(f, "{}-{}", self.block, self.index)
        }
    }
}

/// Not an id of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an audit record id: {0}")]
pub struct BadAuditId(pub String);

impl FromStr for AuditId {
    type Err = BadAuditId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadAuditId(s.to_string());
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let (block, index) = match s.split_once('-') {
            Some((b, i)) if digits(b) && digits(i) => {
                let index: u32 = i.parse().map_err(|_| bad())?;
                // `{block}-0` is spelled `{block}`: one spelling per record.
                if index == 0 {
                    return Err(bad());
                }
                (b, index)
            }
            None if digits(s) => (s, 0),
            _ => return Err(bad()),
        };
        Ok(AuditId {
            block: block.parse().map_err(|_| bad())?,
            index,
        })
    }
}

/// Records gathered into one block, with its search summary.
#[derive(Debug, Clone, Default)]
pub struct AuditBatch {
    body: Vec<u8>,
    records: u32,
    first: i64,
    last: i64,
    keys: [HashMap<String, u32>; 3],
}

/// What a block is found by: its time range, its number of records and its keys with how many
/// records carry each, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockSummary {
    /// The earliest `recorded` (µs since the epoch).
    pub first_recorded: i64,
    /// The latest `recorded`.
    pub last_recorded: i64,
    /// How many records.
    pub records: u32,
    /// `(key row, records)`, sorted by key.
    pub keys: Vec<(String, u32)>,
}

impl AuditBatch {
    /// An empty batch.
    pub fn new() -> Self {
        AuditBatch::default()
    }

    /// Adds a record: `write` appends its compact JSON (no newline) to the body and says whether
    /// it succeeded (otherwise nothing is added). `keys` may repeat a key; a record counts once
    /// per distinct key.
    pub fn push<'k, K>(&mut self, recorded: i64, keys: K, write: impl FnOnce(&mut Vec<u8>) -> bool)
    where
        K: Iterator<Item = (AuditKey, &'k str)> + Clone,
    {
        let start = self.body.len();
        if self.records > 0 {
            self.body.push(b'\n');
        }
        if !write(&mut self.body) {
            self.body.truncate(start);
            return;
        }
        if self.records == 0 || recorded < self.first {
            self.first = recorded;
        }
        if self.records == 0 || recorded > self.last {
            self.last = recorded;
        }
        self.records += 1;
        for (i, (key, value)) in keys.clone().enumerate() {
            // Records carry a handful of keys: a quadratic look back allocates nothing.
            if keys.clone().take(i).any(|(k, v)| k == key && v == value) {
                continue;
            }
            let counts = &mut self.keys[key.slot()];
            match counts.get_mut(value) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(value.to_string(), 1);
                }
            }
        }
    }

    /// Adds the records of `other` after these.
    pub fn append(&mut self, other: AuditBatch) {
        if other.records == 0 {
            return;
        }
        if self.records == 0 {
            *self = other;
            return;
        }
        self.body.push(b'\n');
        self.body.extend_from_slice(&other.body);
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.records += other.records;
        for (mine, theirs) in self.keys.iter_mut().zip(other.keys) {
            for (value, n) in theirs {
                *mine.entry(value).or_insert(0) += n;
            }
        }
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.records as usize
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The body gathered so far (records joined by `"\n"`).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The search summary of the block.
    pub fn summary(&self) -> BlockSummary {
        let mut keys: Vec<(String, u32)> = AuditKey::ALL
            .iter()
            .flat_map(|k| self.keys[k.slot()].iter().map(move |(v, n)| (k.row(v), *n)))
            .collect();
        keys.sort();
        BlockSummary {
            first_recorded: self.first,
            last_recorded: self.last,
            records: self.records,
            keys,
        }
    }

    /// The body as text and the summary.
    pub fn into_parts(self) -> (String, BlockSummary) {
        let summary = self.summary();
        // Every record was written as JSON (UTF-8); a lossy conversion never changes it.
        let body = match String::from_utf8(self.body) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        (body, summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(batch: &mut AuditBatch, recorded: i64, body: &str, keys: &[(AuditKey, &str)]) {
        batch.push(recorded, keys.iter().copied(), |b| {
            b.extend_from_slice(body.as_bytes());
            true
        });
    }

    #[test]
    fn ids_have_one_spelling() {
        for (text, id) in [("7", (7, 0)), ("7-1", (7, 1)), ("12-4095", (12, 4095))] {
            let parsed: AuditId = text.parse().unwrap();
            assert_eq!((parsed.block, parsed.index), id);
            assert_eq!(parsed.to_string(), text);
        }
        for bad in ["", "-", "7-", "-1", "7-0", "x", "7-1-2", "+7", "7 "] {
            assert!(bad.parse::<AuditId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_batch_sums_its_keys_once_per_record() {
        let mut a = AuditBatch::new();
        push(
            &mut a,
            20,
            "{\"a\":1}",
            &[
                (AuditKey::Patient, "p1"),
                (AuditKey::Patient, "p1"),
                (AuditKey::Agent, "Practitioner/d"),
            ],
        );
        push(&mut a, 10, "{\"a\":2}", &[(AuditKey::Patient, "p1")]);
        // A record whose JSON could not be written is not added.
        a.push(5, std::iter::empty(), |b| {
            b.extend_from_slice(b"partial");
            false
        });
        let mut b = AuditBatch::new();
        push(&mut b, 30, "{\"b\":1}", &[(AuditKey::AltId, "acct")]);
        a.append(b);
        a.append(AuditBatch::new());
        assert_eq!(a.len(), 3);
        assert_eq!(a.body(), b"{\"a\":1}\n{\"a\":2}\n{\"b\":1}");
        let (body, summary) = a.into_parts();
        assert_eq!(body.lines().count(), 3);
        assert_eq!(
            summary,
            BlockSummary {
                first_recorded: 10,
                last_recorded: 30,
                records: 3,
                keys: vec![
                    ("agent|Practitioner/d".into(), 1),
                    ("altid|acct".into(), 1),
                    ("patient|p1".into(), 2),
                ],
            }
        );
    }
}
