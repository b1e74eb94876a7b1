//! The token skipping index of log files: which row groups of a logs Parquet file may hold
//! a given substring of the log body, so a search for a rare token reads only those.
//!
//! For every block of rows (one per Parquet row group) the index keeps a one-hash Bloom
//! filter of the body's byte [`GRAM`]-grams. A needle of at least `GRAM` bytes can occur in
//! a row group only if every one of its grams is in the filter, so a row group whose filter
//! lacks any gram is skipped. Grams, not words, keep the answer exact for Loki's `|=`,
//! which is a substring match: `|= "rror"` must still find `error`.
//!
//! Two things keep the filters small (version 2):
//!
//! * **Content-defined sampling**: only grams whose hash has its low [`SAMPLE_BITS`] bits
//!   zero are indexed (half of the distinct grams). Which grams are sampled depends on their
//!   bytes alone, never on where they stand, so a needle's sampled grams are sampled in every
//!   line holding the needle too: checking just those stays exact (no line is ever missed).
//!   A needle none of whose grams is sampled cannot be checked and skips nothing; a 16-byte
//!   id has 11 grams, so that happens about once in 2,000 needles.
//! * **Sized for the distinct grams**: a block's grams are first set in a large
//!   power-of-two bitmap (one bit per 8 sampled gram occurrences); its fill estimates how many distinct grams there are (linear
//!   counting), and the stored filter gets just enough bits for [`TARGET_FILL`] of them to
//!   be set (about 1.44 bits per distinct sampled gram), each large-bitmap bit `b` mapping
//!   to filter bit `b * bits / 2^log2_big`. Because a needle has many grams and all must
//!   hit, a high false-positive rate per gram is affordable: a 16-byte id (about 5 sampled
//!   grams) falsely hits a row group about 3% of the time, and longer needles far less.
//!
//! The index is a sidecar file written next to the Parquet file (`<file>.tokens`) before
//! the catalog names the file, rewritten by compaction (which rebuilds files) and deleted
//! with the file. A missing, unreadable or unknown-version sidecar only means nothing is
//! skipped; version 1 sidecars (every gram, power-of-two filters) are still read.
//!
//! Version 3 (written since 2026-11-29) is version 2 with a cheaper gram hash (one
//! multiply instead of splitmix64's two plus shifts; the hashing loop is most of the
//! build); the version byte says which hash a sidecar's filters use, so version 2 and 1
//! sidecars still read.
//!
//! Layout (little-endian): magic `STTI`, version u8 (3), gram u8, sample bits u8, block
//! count u32, then per block: first row u64, rows u64, log2 of the large bitmap's bit count
//! u8, the filter's bit count u32 (a multiple of 64), the filter's bytes; finally a CRC-32 of
//! everything before it. Version 1 had no sample bits and per block only the log2 of the
//! filter's bit count (a power of two) before its bytes.

use crate::telemetry::Counter;

/// Bytes per gram. Needles shorter than this cannot use the index.
pub const GRAM: usize = 6;
/// A gram is indexed when the low this-many bits of its hash are zero (1: half of them).
pub const SAMPLE_BITS: u8 = 1;
/// Share of a filter's bits that are set, by design.
pub const TARGET_FILL: f64 = 0.5;
const MAGIC: &[u8; 4] = b"STTI";
const VERSION: u8 = 3;
/// Smallest filter: 2^10 bits.
const MIN_LOG2_BITS: u8 = 10;
/// Largest bitmap: 2^28 bits (32 MiB), whatever the row group holds.
const MAX_LOG2_BITS: u8 = 28;

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
    /// Log2 of the bit count of the bitmap the grams were hashed into.
    log2_big: u8,
    /// Bits of the stored filter (a multiple of 64, at most `2^log2_big`).
    nbits: u64,
    bits: Vec<u64>,
}

impl Block {
    fn build<'a>(
        lines: impl Iterator<Item = &'a str> + Clone,
        first_row: u64,
        rows: u64,
        hash: impl Fn(u64) -> u64 + Copy,
    ) -> Self {
        let total: u64 = lines
            .clone()
            .map(|l| l.len().saturating_sub(GRAM - 1) as u64)
            .sum::<u64>()
            >> SAMPLE_BITS;
        // One bit per 8 sampled gram occurrences: grams repeat a lot in logs, so this is
        // still a few bits per distinct gram, enough for linear counting to be accurate,
        // and small enough to stay in cache (setting its bits is most of the build's time).
        let log2_for = |per: u64| {
            ((total / per).max(1).next_power_of_two().trailing_zeros() as u8)
                .clamp(MIN_LOG2_BITS, MAX_LOG2_BITS)
        };
        let (mut log2_big, mut big) = (log2_for(8), Vec::new());
        loop {
            big.clear();
            big.resize(1usize << (log2_big - 6), 0u64);
            let shift = 64 - u32::from(log2_big);
            let sample = sample_mask(SAMPLE_BITS);
            for l in lines.clone() {
                for_each_gram(l.as_bytes(), |g| {
                    let h = hash(g);
                    // Branch-free: an unsampled gram ORs in a zero bit. Sampling is a coin
                    // flip per gram that a branch mispredicts half the time; without the
                    // branch the build takes 40% less CPU (same bits).
                    let i = (h >> shift) as usize;
                    big[i >> 6] |= u64::from(h & sample == 0) << (i & 63);
                });
            }
            // Mostly distinct grams (random ids) fill the small bitmap: count again in one
            // with a bit per occurrence, which the filter is then folded from.
            let ones: u64 = big.iter().map(|w| u64::from(w.count_ones())).sum();
            let full = log2_for(1);
            if ones * 10 <= (1u64 << log2_big) * 7 || log2_big >= full {
                break;
            }
            log2_big = full;
        }
        let big_bits = 1u64 << log2_big;
        let ones: u64 = big.iter().map(|w| u64::from(w.count_ones())).sum();
        // Linear counting: distinct grams from the share of bits still zero.
        let zero = (big_bits - ones).max(1) as f64 / big_bits as f64;
        let distinct = -(big_bits as f64) * zero.ln();
        let want_bits = (distinct / -(1.0 - TARGET_FILL).ln()).ceil() as u64;
        let nbits = want_bits
            .div_ceil(64)
            .saturating_mul(64)
            .clamp(1 << MIN_LOG2_BITS, big_bits);
        let bits = if nbits == big_bits {
            big
        } else {
            let mut small = vec![0u64; (nbits / 64) as usize];
            for (w, word) in big.iter().enumerate() {
                let mut x = *word;
                while x != 0 {
                    let b = (w as u64) * 64 + u64::from(x.trailing_zeros());
                    let j = ((u128::from(b) * u128::from(nbits)) >> log2_big) as usize;
                    small[j >> 6] |= 1u64 << (j & 63);
                    x &= x - 1;
                }
            }
            small
        };
        Block {
            first_row,
            rows,
            log2_big,
            nbits,
            bits,
        }
    }

    /// Whether every sampled gram of `grams` (hashes) may be in the block.
    fn contains_all(&self, hashes: &[u64]) -> bool {
        let shift = 64 - u32::from(self.log2_big);
        hashes.iter().all(|h| {
            let b = h >> shift;
            let i = ((u128::from(b) * u128::from(self.nbits)) >> self.log2_big) as usize;
            self.bits
                .get(i >> 6)
                .is_none_or(|w| w & (1u64 << (i & 63)) != 0)
        })
    }
}

/// The gram hash of version 3: one multiply (Fibonacci hashing, whose top bits, the
/// filter positions, depend on every bit of the gram), its high half folded into the low
/// bits, which decide the sampling. A third of version 2's work per byte of text.
#[inline]
fn gram_hash_v3(g: u64) -> u64 {
    let p = g.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    p ^ (p >> 32)
}

/// The gram hash of versions 1 and 2.
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

fn sample_mask(bits: u8) -> u64 {
    (1u64 << bits) - 1
}

/// The token index of one logs file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenIndex {
    /// The format version it was built or read as: 3 hashes grams with [`gram_hash_v3`],
    /// 1 and 2 with [`gram_hash`].
    version: u8,
    /// Grams whose hash has this many low bits zero are indexed (0 in version 1: all).
    sample_bits: u8,
    blocks: Vec<Block>,
}

/// The grams of the needles a query's line filters require (each index hashes them as its
/// version does); needles shorter than [`GRAM`] are dropped (they cannot be checked).
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
        Self::build_version(lines, block_rows, VERSION)
    }

    /// [`TokenIndex::build`] in the format of `version` (2 or 3; tests build version 2 to
    /// check that its sidecars still read).
    fn build_version(lines: &[&str], block_rows: usize, version: u8) -> Self {
        if version >= 3 {
            Self::build_with(lines, block_rows, version, gram_hash_v3)
        } else {
            Self::build_with(lines, block_rows, version, gram_hash)
        }
    }

    /// Generic over the hash so that it is inlined into the build loop (a function
    /// pointer made each gram a call).
    fn build_with(
        lines: &[&str],
        block_rows: usize,
        version: u8,
        hash: impl Fn(u64) -> u64 + Copy,
    ) -> Self {
        let block_rows = block_rows.max(1);
        let blocks = lines
            .chunks(block_rows)
            .enumerate()
            .map(|(i, chunk)| {
                Block::build(
                    chunk.iter().copied(),
                    (i * block_rows) as u64,
                    chunk.len() as u64,
                    hash,
                )
            })
            .collect();
        TokenIndex {
            version,
            sample_bits: SAMPLE_BITS,
            blocks,
        }
    }

    /// Whether rows `[first_row, first_row + rows)` may hold a line containing every needle.
    pub fn may_match(&self, first_row: u64, rows: u64, needles: &Needles) -> bool {
        // Only the sampled grams of each needle are in the filters.
        let mask = sample_mask(self.sample_bits);
        let sampled: Vec<Vec<u64>> = needles
            .0
            .iter()
            .map(|n| {
                n.iter()
                    .map(|&g| {
                        if self.version >= 3 {
                            gram_hash_v3(g)
                        } else {
                            gram_hash(g)
                        }
                    })
                    .filter(|h| h & mask == 0)
                    .collect::<Vec<_>>()
            })
            .filter(|n| !n.is_empty())
            .collect();
        if sampled.is_empty() {
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
            if sampled.iter().all(|g| b.contains_all(g)) {
                any = true;
            }
        }
        any || covered < end
    }

    /// The serialized form (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(self.version);
        out.push(GRAM as u8);
        out.push(self.sample_bits);
        out.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        for b in &self.blocks {
            out.extend_from_slice(&b.first_row.to_le_bytes());
            out.extend_from_slice(&b.rows.to_le_bytes());
            out.push(b.log2_big);
            out.extend_from_slice(&(b.nbits as u32).to_le_bytes());
            for w in &b.bits {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a serialized index (versions 1 to 3); `None` when it is damaged or of another
    /// version.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let (body, crc) = data.split_at_checked(data.len().checked_sub(4)?)?;
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader(body);
        if r.take(4)? != MAGIC {
            return None;
        }
        let version = r.u8()?;
        if !(1..=VERSION).contains(&version) || usize::from(r.u8()?) != GRAM {
            return None;
        }
        let sample_bits = if version >= 2 { r.u8()? } else { 0 };
        if sample_bits > 16 {
            return None;
        }
        let n = r.u32()?;
        let mut blocks = Vec::new();
        for _ in 0..n {
            let first_row = r.u64()?;
            let rows = r.u64()?;
            // Readers add the two: a block past u64::MAX is not one we wrote.
            first_row.checked_add(rows)?;
            let log2_big = r.u8()?;
            if !(MIN_LOG2_BITS..=MAX_LOG2_BITS).contains(&log2_big) {
                return None;
            }
            let nbits = if version >= 2 {
                u64::from(r.u32()?)
            } else {
                1u64 << log2_big
            };
            if nbits == 0 || nbits % 64 != 0 || nbits > 1u64 << log2_big {
                return None;
            }
            let raw = r.take((nbits / 8) as usize)?;
            let bits = raw
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0xff; 8])))
                .collect();
            blocks.push(Block {
                first_row,
                rows,
                log2_big,
                nbits,
                bits,
            });
        }
        (r.0.is_empty()).then_some(TokenIndex {
            version,
            sample_bits,
            blocks,
        })
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
        // A block whose rows run past u64::MAX, with a valid checksum, is refused too.
        let mut wild = idx.clone();
        wild.blocks[0].first_row = u64::MAX;
        assert!(TokenIndex::decode(&wild.encode()).is_none());
    }

    #[test]
    fn filters_are_sized_for_the_target_fill() {
        // Random ids: almost every gram distinct, the worst case for size.
        let mut x = 0x1234_5678_9abc_def0u64;
        let ids: Vec<String> = (0..20_000)
            .map(|_| {
                x = gram_hash(x);
                format!("trace_id={x:016x}{:016x}", gram_hash(x ^ 1))
            })
            .collect();
        let all: Vec<&str> = ids.iter().map(String::as_str).collect();
        let idx = TokenIndex::build(&all, 20_000);
        let b = &idx.blocks[0];
        let fill = b.bits.iter().map(|w| w.count_ones()).sum::<u32>() as f64 / b.nbits as f64;
        assert!((0.4..0.6).contains(&fill), "fill {fill}");
        // About 1.44 bits per distinct sampled gram (half of the ~27 grams per id).
        let per_id = b.nbits as f64 / 20_000.0;
        assert!((15.0..25.0).contains(&per_id), "{per_id} bits per id");
        // Every id is found; ids never indexed are skipped nearly always.
        for id in ids.iter().step_by(97) {
            assert!(idx.may_match(0, 20_000, &Needles::new(&[&id[9..]])));
        }
        let misses = (0..1000)
            .filter(|i| {
                let n = format!("{:016x}{:016x}", gram_hash(*i), gram_hash(i + 7));
                idx.may_match(0, 20_000, &Needles::new(&[n]))
            })
            .count();
        assert!(misses < 10, "{misses} false hits of 1000");
    }

    #[test]
    fn reads_version_1_sidecars() {
        // A v1 index: every gram, a 2^10-bit filter, one block of 2 rows with "abcdefg".
        let mut v1 = Vec::new();
        v1.extend_from_slice(MAGIC);
        v1.push(1);
        v1.push(GRAM as u8);
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&0u64.to_le_bytes());
        v1.extend_from_slice(&2u64.to_le_bytes());
        v1.push(10);
        let mut bits = vec![0u64; 16];
        for_each_gram(b"abcdefg", |g| {
            let i = (gram_hash(g) >> 54) as usize;
            bits[i >> 6] |= 1u64 << (i & 63);
        });
        for w in &bits {
            v1.extend_from_slice(&w.to_le_bytes());
        }
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        let idx = TokenIndex::decode(&v1).expect("v1 decodes");
        assert_eq!(idx.sample_bits, 0);
        assert!(idx.may_match(0, 2, &Needles::new(&["abcdefg"])));
        assert!(!idx.may_match(0, 2, &Needles::new(&["zyxwvut"])));
    }

    #[test]
    fn version_2_sidecars_still_read_and_version_3_is_written() {
        let a = lines(3000, "alpha");
        let mut all: Vec<&str> = a.iter().map(String::as_str).collect();
        all.push("the needle rare-00c0ffee00d15ea5e is here");
        let v3 = TokenIndex::build(&all, 1000).encode();
        assert_eq!(v3[4], 3);
        let v2 = TokenIndex::build_version(&all, 1000, 2).encode();
        assert_eq!(v2[4], 2);
        for bytes in [v2, v3] {
            let idx = TokenIndex::decode(&bytes).expect("decodes");
            let needle = Needles::new(&["rare-00c0ffee00d15ea5e"]);
            assert!(idx.may_match(3000, 1, &needle), "v{}", bytes[4]);
            assert!(!idx.may_match(0, 1000, &needle), "v{}", bytes[4]);
            for (i, l) in all.iter().enumerate().step_by(101) {
                assert!(idx.may_match(i as u64, 1, &Needles::new(&[&l[3..20]])));
            }
        }
    }
}
