//! The token skipping index of log files: which row groups of a logs Parquet file may hold
//! a given substring of the log body, so a search for a rare token reads only those.
//!
//! For every block of rows (one per Parquet row group) the index keeps a one-hash Bloom
//! filter of the body's byte [`GRAM`]-grams. A needle of at least `GRAM` bytes can occur in
//! a row group only if every one of its grams is in the filter, so a row group whose filter
//! lacks any gram is skipped. Grams, not words, keep the answer exact for Loki's `|=`,
//! which is a substring match: `|= "rror"` must still find `error`. Because a needle has
//! many grams and all must hit, each filter can afford a high false-positive rate (it is
//! folded down until up to half of its bits are set, about 1.5 to 3 bits per distinct gram),
//! while a 16-byte id (11 grams) is still almost never a false hit.
//!
//! The index is a sidecar file written next to the Parquet file (`<file>.tokens`) before
//! the catalog names the file, rewritten by compaction (which rebuilds files) and deleted
//! with the file. A missing or unreadable sidecar only means nothing is skipped.
//!
//! Layout (little-endian): magic `STTI`, version u8, gram u8, block count u32, then per
//! block: first row u64, rows u64, log2 of the filter's bit count u8, the filter's bytes;
//! finally a CRC-32 of everything before it.

use crate::telemetry::Counter;

/// Bytes per gram. Needles shorter than this cannot use the index.
pub const GRAM: usize = 6;
const MAGIC: &[u8; 4] = b"STTI";
const VERSION: u8 = 1;
/// Smallest filter: 2^10 bits.
const MIN_LOG2_BITS: u8 = 10;
/// Largest filter: 2^28 bits (32 MiB), whatever the row group holds.
const MAX_LOG2_BITS: u8 = 28;
/// Folding stops before more than this share of the bits would be set.
const MAX_FILL: f64 = 0.5;

/// Row groups the token index let a query skip.
pub static ROW_GROUPS_SKIPPED: Counter = Counter::new(
    "strata_logs_token_index_row_groups_skipped_total",
    "Log row groups skipped because their token index shows a line filter cannot match.",
);
/// Row groups read although a line filter was consulted against the token index.
pub static ROW_GROUPS_READ: Counter = Counter::new(
    "strata_logs_token_index_row_groups_read_total",
    "Log row groups read after the token index was consulted for a line filter.",
);

/// The token index's metrics, for `/metrics`.
pub static TOKEN_INDEX_METRICS: &[&dyn crate::telemetry::Render] =
    &[&ROW_GROUPS_SKIPPED, &ROW_GROUPS_READ];

/// The sidecar path of a Parquet file's token index.
pub fn sidecar_path(parquet_path: &str) -> String {
    format!("{parquet_path}.tokens")
}

/// One block's filter.
#[derive(Debug, Clone, PartialEq)]
struct Block {
    first_row: u64,
    rows: u64,
    log2_bits: u8,
    bits: Vec<u64>,
}

#[inline]
fn gram_hash(g: u64) -> u64 {
    // splitmix64's finalizer: cheap and mixes every input bit into the top bits.
    let mut z = g.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Calls `f` with each gram of `text`, packed into the low `8 * GRAM` bits of a u64.
#[inline]
fn for_each_gram(text: &[u8], mut f: impl FnMut(u64)) {
    if text.len() < GRAM {
        return;
    }
    let mask: u64 = (1u64 << (8 * GRAM)) - 1;
    let mut g: u64 = 0;
    for (i, b) in text.iter().enumerate() {
        g = ((g << 8) | u64::from(*b)) & mask;
        if i + 1 >= GRAM {
            f(g);
        }
    }
}

impl Block {
    fn build<'a>(lines: impl Iterator<Item = &'a str> + Clone, first_row: u64, rows: u64) -> Self {
        let total: u64 = lines
            .clone()
            .map(|l| l.len().saturating_sub(GRAM - 1) as u64)
            .sum();
        // Grams repeat a lot in logs; start at about one bit per gram and fold down.
        let want = total.max(1).next_power_of_two().trailing_zeros() as u8;
        let log2_bits = want.clamp(MIN_LOG2_BITS, MAX_LOG2_BITS);
        let mut bits = vec![0u64; 1usize << (log2_bits - 6)];
        let shift = 64 - u32::from(log2_bits);
        for l in lines {
            for_each_gram(l.as_bytes(), |g| {
                let i = (gram_hash(g) >> shift) as usize;
                bits[i >> 6] |= 1u64 << (i & 63);
            });
        }
        let mut block = Block {
            first_row,
            rows,
            log2_bits,
            bits,
        };
        block.fold_to_fill();
        block
    }

    fn fill(bits: &[u64]) -> f64 {
        let ones: u64 = bits.iter().map(|w| u64::from(w.count_ones())).sum();
        ones as f64 / (bits.len() as f64 * 64.0)
    }

    /// Halves the filter while the result stays under [`MAX_FILL`]. With the top hash bits
    /// as the index, bit `j` of the half-size filter is bits `2j` and `2j+1` or-ed.
    fn fold_to_fill(&mut self) {
        while self.log2_bits > MIN_LOG2_BITS {
            let half = fold(&self.bits);
            if Self::fill(&half) > MAX_FILL {
                break;
            }
            self.bits = half;
            self.log2_bits -= 1;
        }
    }

    fn contains_all(&self, grams: &[u64]) -> bool {
        let shift = 64 - u32::from(self.log2_bits);
        grams.iter().all(|g| {
            let i = (gram_hash(*g) >> shift) as usize;
            self.bits
                .get(i >> 6)
                .is_none_or(|w| w & (1u64 << (i & 63)) != 0)
        })
    }
}

/// A filter of half the bits: new bit `j` = old bits `2j | 2j+1`.
fn fold(bits: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; bits.len() / 2];
    for (j, w) in out.iter_mut().enumerate() {
        let (a, b) = (bits[2 * j], bits[2 * j + 1]);
        *w = squeeze(a) | (squeeze(b) << 32);
    }
    out
}

/// Ors each pair of adjacent bits of `w` into one bit: 64 bits in, 32 bits out.
fn squeeze(w: u64) -> u64 {
    let mut x = (w | (w >> 1)) & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x >> 4)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x >> 8)) & 0x0000_ffff_0000_ffff;
    (x | (x >> 16)) & 0x0000_0000_ffff_ffff
}

/// The token index of one logs file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenIndex {
    blocks: Vec<Block>,
}

/// The grams of the needles a query's line filters require; needles shorter than
/// [`GRAM`] are dropped (they cannot be checked).
#[derive(Debug, Clone, Default)]
pub struct Needles(Vec<Vec<u64>>);

impl Needles {
    pub fn new<S: AsRef<[u8]>>(needles: &[S]) -> Self {
        Needles(
            needles
                .iter()
                .filter(|n| n.as_ref().len() >= GRAM)
                .map(|n| {
                    let mut g = Vec::new();
                    for_each_gram(n.as_ref(), |x| g.push(x));
                    g.sort_unstable();
                    g.dedup();
                    g
                })
                .collect(),
        )
    }

    /// True when no needle can be checked (the index cannot skip anything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TokenIndex {
    /// Builds the index of `lines` (the bodies of a file in row order), one filter per
    /// `block_rows` rows.
    pub fn build(lines: &[&str], block_rows: usize) -> Self {
        let block_rows = block_rows.max(1);
        let blocks = lines
            .chunks(block_rows)
            .enumerate()
            .map(|(i, chunk)| {
                Block::build(
                    chunk.iter().copied(),
                    (i * block_rows) as u64,
                    chunk.len() as u64,
                )
            })
            .collect();
        TokenIndex { blocks }
    }

    /// Whether rows `[first_row, first_row + rows)` may hold a line containing every needle.
    pub fn may_match(&self, first_row: u64, rows: u64, needles: &Needles) -> bool {
        if needles.is_empty() {
            return true;
        }
        let end = first_row.saturating_add(rows);
        let mut covered = first_row;
        let mut overlapping = self
            .blocks
            .iter()
            .filter(|b| b.first_row < end && b.first_row + b.rows > first_row)
            .peekable();
        if overlapping.peek().is_none() {
            return true;
        }
        let mut any = false;
        for b in overlapping {
            if b.first_row > covered {
                return true; // a gap the index does not describe
            }
            covered = covered.max(b.first_row + b.rows);
            if needles.0.iter().all(|g| b.contains_all(g)) {
                any = true;
            }
        }
        any || covered < end
    }

    /// The serialized form (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(GRAM as u8);
        out.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        for b in &self.blocks {
            out.extend_from_slice(&b.first_row.to_le_bytes());
            out.extend_from_slice(&b.rows.to_le_bytes());
            out.push(b.log2_bits);
            for w in &b.bits {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a serialized index; `None` when it is damaged or of another version.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let (body, crc) = data.split_at_checked(data.len().checked_sub(4)?)?;
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader(body);
        if r.take(4)? != MAGIC || r.u8()? != VERSION || usize::from(r.u8()?) != GRAM {
            return None;
        }
        let n = r.u32()?;
        let mut blocks = Vec::new();
        for _ in 0..n {
            let first_row = r.u64()?;
            let rows = r.u64()?;
            let log2_bits = r.u8()?;
            if !(MIN_LOG2_BITS..=MAX_LOG2_BITS).contains(&log2_bits) {
                return None;
            }
            let words = 1usize << (log2_bits - 6);
            let raw = r.take(words * 8)?;
            let bits = raw
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0xff; 8])))
                .collect();
            blocks.push(Block {
                first_row,
                rows,
                log2_bits,
                bits,
            });
        }
        (r.0.is_empty()).then_some(TokenIndex { blocks })
    }
}

/// The serialized token index of a sorted logs batch, one filter per Parquet row group.
pub fn build_for_batch(batch: &datafusion::arrow::array::RecordBatch) -> Vec<u8> {
    use datafusion::arrow::array::{Array, StringArray};
    let bodies = batch
        .column_by_name("body")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let lines: Vec<&str> = match bodies {
        Some(b) => (0..b.len()).map(|i| b.value(i)).collect(),
        None => Vec::new(),
    };
    TokenIndex::build(&lines, crate::files::ROW_GROUP_ROWS).encode()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, salt: &str) -> Vec<String> {
        (0..n)
            .map(|i| {
                format!(
                    "{salt} GET /api/cart/{i} status=200 user=u{} took {}ms",
                    i % 97,
                    i % 13
                )
            })
            .collect()
    }

    #[test]
    fn finds_substrings_and_skips_absent_needles() {
        let mut a = lines(5000, "svc-a");
        a[1234] = "payment failed for order ord-7f3a9c21e0 after retry".into();
        let b = lines(5000, "svc-b");
        let all: Vec<&str> = a.iter().chain(b.iter()).map(String::as_str).collect();
        let idx = TokenIndex::build(&all, 5000);
        let back = TokenIndex::decode(&idx.encode()).expect("round trip");
        assert_eq!(back, idx);
        let needle = Needles::new(&["ord-7f3a9c21e0"]);
        assert!(idx.may_match(0, 5000, &needle));
        assert!(!idx.may_match(5000, 5000, &needle));
        // Any substring of at least GRAM bytes is found, not only whole words.
        let part = Needles::new(&["rd-7f3a9c21e0 af"]);
        assert!(idx.may_match(0, 5000, &part));
        assert!(!idx.may_match(5000, 5000, &part));
        // Short needles cannot be checked: nothing is skipped.
        let short = Needles::new(&["ord"]);
        assert!(short.is_empty());
        assert!(idx.may_match(5000, 5000, &short));
        // Every needle must be possible.
        let both = Needles::new(&["svc-a GET", "ord-7f3a9c21e0"]);
        assert!(idx.may_match(0, 5000, &both));
        let other = Needles::new(&["svc-b GET", "ord-7f3a9c21e0"]);
        assert!(!idx.may_match(5000, 5000, &other));
        // Rows the index does not describe are never skipped.
        assert!(idx.may_match(10_000, 10, &needle));
    }

    #[test]
    fn never_a_false_negative() {
        let a = lines(3000, "x");
        let all: Vec<&str> = a.iter().map(String::as_str).collect();
        let idx = TokenIndex::build(&all, 1000);
        for (row, l) in a.iter().enumerate().step_by(37) {
            for w in l.as_bytes().windows(GRAM + 3).step_by(5) {
                let n = Needles::new(&[w]);
                assert!(idx.may_match(row as u64, 1, &n), "{l}");
            }
        }
    }

    #[test]
    fn filters_are_small_and_damage_is_detected() {
        let a = lines(20_000, "service");
        let all: Vec<&str> = a.iter().map(String::as_str).collect();
        let idx = TokenIndex::build(&all, 20_000);
        let bytes = idx.encode();
        let raw: usize = a.iter().map(String::len).sum();
        assert!(bytes.len() * 20 < raw, "{} vs {raw}", bytes.len());
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(TokenIndex::decode(&bad).is_none());
        assert!(TokenIndex::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(TokenIndex::decode(b"").is_none());
    }

    #[test]
    fn folding_ors_adjacent_bits() {
        assert_eq!(squeeze(0b1101), 0b11);
        assert_eq!(squeeze(0b0100), 0b10);
        assert_eq!(squeeze(1u64 << 63), 1u64 << 31);
        let f = fold(&[0b1001, 1]);
        assert_eq!(f, vec![0b11 | (1 << 32)]);
    }
}
