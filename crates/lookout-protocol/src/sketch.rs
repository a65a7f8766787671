//! A mergeable latency sketch (DDSketch) with 1 % relative accuracy.
//!
//! (Written by the lead engineer because the server's storage needs it early; its API —
//! `new`, `add`, `merge`, `quantile`, `count`, `sum`, `min`, `max`, `to_bytes`,
//! `from_bytes` — is used by `lookout-server`; keep it.)
//!
//! A value `v > 0` falls in bucket `ceil(log_γ v)` with `γ = (1 + α) / (1 − α)`; every value
//! of a bucket is within `α` of the bucket's representative `2γ^i / (γ + 1)`. Buckets are
//! counts, so two sketches merge by adding counts, and a p99 over a day merges a few hundred
//! per-minute sketches instead of reading millions of rows. At most [`MAX_BUCKETS`] buckets
//! are kept; past that the lowest buckets are folded together (the high percentiles, which
//! latency alerts read, stay exact to α).

use std::collections::BTreeMap;

/// Relative accuracy.
pub const ALPHA: f64 = 0.01;

/// Most buckets kept (1 % accuracy covers 1 µs to 10⁹ ms in about 1,500 buckets).
pub const MAX_BUCKETS: usize = 2048;

/// Values at or below this (ms) count as zero.
const MIN_VALUE: f64 = 1e-6;

/// Format version of [`DDSketch::to_bytes`].
const VERSION: u8 = 1;

/// A DDSketch over non-negative values (milliseconds, by convention).
#[derive(Debug, Clone, PartialEq)]
pub struct DDSketch {
    buckets: BTreeMap<i32, u64>,
    zeros: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Default for DDSketch {
    fn default() -> Self {
        Self::new()
    }
}

/// Why bytes are not a sketch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sketch bytes: {0}")]
pub struct SketchError(&'static str);

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

fn index_of(v: f64) -> i32 {
    let i = (v.ln() / gamma().ln()).ceil();
    i.clamp(f64::from(i32::MIN / 2), f64::from(i32::MAX / 2)) as i32
}

fn value_of(i: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(i) / (g + 1.0)
}

impl DDSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self {
            buckets: BTreeMap::new(),
            zeros: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Add one value. Negative and non-finite values are ignored.
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() || v < 0.0 {
            return;
        }
        if v <= MIN_VALUE {
            self.zeros += 1;
        } else {
            *self.buckets.entry(index_of(v)).or_insert(0) += 1;
            self.collapse();
        }
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Add every count of `other`.
    pub fn merge(&mut self, other: &DDSketch) {
        for (i, n) in &other.buckets {
            *self.buckets.entry(*i).or_insert(0) += n;
        }
        self.collapse();
        self.zeros += other.zeros;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    fn collapse(&mut self) {
        while self.buckets.len() > MAX_BUCKETS {
            let Some((lowest, n)) = self.buckets.pop_first() else {
                return;
            };
            let _ = lowest;
            if let Some(mut next) = self.buckets.first_entry() {
                *next.get_mut() += n;
            }
        }
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of values added.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Smallest value, if any.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value, if any.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// The `q`-quantile (0 ≤ q ≤ 1), within α of the exact lower-rank quantile
    /// (the value of rank `⌊q·(n−1)⌋` in sorted order); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !q.is_finite() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        for (i, n) in &self.buckets {
            seen += n;
            if seen > rank {
                return Some(value_of(*i).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Compact little-endian encoding for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(45 + self.buckets.len() * 12);
        out.push(VERSION);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.zeros.to_le_bytes());
        out.extend_from_slice(&self.sum.to_le_bytes());
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        out.extend_from_slice(&(self.buckets.len() as u32).to_le_bytes());
        for (i, n) in &self.buckets {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    /// Decode [`DDSketch::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<DDSketch, SketchError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(1)?[0] != VERSION {
            return Err(SketchError("unknown version"));
        }
        let count = r.u64()?;
        let zeros = r.u64()?;
        let sum = r.f64()?;
        let min = r.f64()?;
        let max = r.f64()?;
        let n = r.u32()? as usize;
        if n > MAX_BUCKETS || bytes.len() != 45 + n * 12 {
            return Err(SketchError("bucket count does not match the length"));
        }
        let mut buckets = BTreeMap::new();
        let mut total = zeros;
        for _ in 0..n {
            let i = i32::from_le_bytes(r.array()?);
            let c = r.u64()?;
            total = total.saturating_add(c);
            buckets.insert(i, c);
        }
        if total != count {
            return Err(SketchError("bucket counts do not add up"));
        }
        Ok(DDSketch {
            buckets,
            zeros,
            count,
            sum,
            min,
            max,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], SketchError> {
        let end = self.pos.checked_add(n).ok_or(SketchError("truncated"))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or(SketchError("truncated"))?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SketchError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, SketchError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, SketchError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, SketchError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn percentiles_of_one_to_a_hundred() {
        let mut s = DDSketch::new();
        for v in 1..=100 {
            s.add(f64::from(v));
        }
        for (q, want) in [
            (0.5, 50.0),
            (0.95, 95.0),
            (0.99, 99.0),
            (0.0, 1.0),
            (1.0, 100.0),
        ] {
            let got = s.quantile(q).unwrap();
            assert!((got - want).abs() <= want * ALPHA, "q{q}: {got} vs {want}");
        }
        assert_eq!(s.count(), 100);
        assert_eq!(s.sum(), 5050.0);
        assert_eq!(DDSketch::new().quantile(0.5), None);
    }

    #[test]
    fn bytes_round_trip_and_garbage_is_refused() {
        let mut s = DDSketch::new();
        for v in [0.0, 0.5, 3.0, 1e6] {
            s.add(v);
        }
        assert_eq!(DDSketch::from_bytes(&s.to_bytes()).unwrap(), s);
        assert!(DDSketch::from_bytes(&[]).is_err());
        assert!(DDSketch::from_bytes(&[1, 2, 3]).is_err());
        let mut bad = s.to_bytes();
        bad[1] ^= 1;
        assert!(DDSketch::from_bytes(&bad).is_err());
    }

    proptest! {
        #[test]
        fn within_relative_accuracy(values in proptest::collection::vec(0.001f64..1e7, 1..500), q in 0.0f64..=1.0) {
            let mut s = DDSketch::new();
            for v in &values { s.add(*v); }
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let want = exact(&sorted, q);
            let got = s.quantile(q).unwrap();
            prop_assert!((got - want).abs() <= want * ALPHA * 1.0001, "q{} got {} want {}", q, got, want);
        }

        #[test]
        fn merge_equals_union(a in proptest::collection::vec(0.0f64..1e5, 0..200), b in proptest::collection::vec(0.0f64..1e5, 0..200)) {
            let (mut sa, mut sb, mut su) = (DDSketch::new(), DDSketch::new(), DDSketch::new());
            for v in &a { sa.add(*v); su.add(*v); }
            for v in &b { sb.add(*v); su.add(*v); }
            sa.merge(&sb);
            prop_assert_eq!(sa.count(), su.count());
            for q in [0.1, 0.5, 0.9, 0.99] {
                prop_assert_eq!(sa.quantile(q), su.quantile(q));
            }
        }
    }
}
