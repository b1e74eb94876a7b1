//! Merging a series' runs of samples into time order.
//!
//! A series' samples arrive as one run per file (then one per memtable batch), each sorted
//! by time. Metrics files of different time windows do not overlap and come in window
//! order, so the runs are usually one ascending sequence, returned as it is after one
//! check. Late writes into a window, files of older versions (a UTC day each) and
//! memtables holding older times make runs that interleave. Instead of sorting the whole series, the runs are merged
//! pairwise (neighbours first, so a merge's right side always arrived after its left side):
//! of equal timestamps the one that arrived last (the later file) wins, as with a stable
//! sort that keeps the last of each timestamp.

use strata_promql::FPoint;

/// Above this many runs the block merge (which looks at every run's head per block) costs
/// more than a sort: a series written one sample per request in reverse time order is one
/// run per sample.
const MAX_MERGED_RUNS: usize = 64;

/// Sorts `points` (runs of samples in arrival order) by time, keeping for each timestamp
/// the point that arrived last. Already ordered input is returned as it is.
pub(super) fn merge_runs(points: Vec<FPoint>) -> Vec<FPoint> {
    // Natural runs: strictly increasing stretches. A point not after its predecessor
    // starts a new run, so that a duplicate in arrival order is resolved by the merge.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for (i, w) in points.windows(2).enumerate() {
        if w[1].t <= w[0].t {
            runs.push((start, i + 1));
            start = i + 1;
        }
    }
    if runs.is_empty() {
        return points;
    }
    runs.push((start, points.len()));
    if runs.len() > MAX_MERGED_RUNS {
        return sort_keep_last(points);
    }
    let mut out: Vec<FPoint> = Vec::with_capacity(points.len());
    // Files interleave in blocks of time (a compacted file holds some stretches, level-0
    // files the others), so each step copies the block of the run with the earliest head
    // that lies before every other run's head.
    loop {
        // The earliest head; of equal heads the latest run's.
        let mut win: Option<(usize, i64)> = None;
        for (r, &(s, e)) in runs.iter().enumerate() {
            if let (true, Some(p)) = (s < e, points.get(s))
                && win.is_none_or(|(_, t)| p.t <= t)
            {
                win = Some((r, p.t));
            }
        }
        let Some((w, t_min)) = win else { break };
        // Earlier runs' points at that time lose; the next earliest head bounds the block.
        let mut bound: Option<i64> = None;
        for (r, run) in runs.iter_mut().enumerate() {
            if r == w || run.0 >= run.1 {
                continue;
            }
            if points.get(run.0).is_some_and(|p| p.t == t_min) {
                run.0 += 1;
            }
            if let (true, Some(p)) = (run.0 < run.1, points.get(run.0)) {
                bound = Some(bound.map_or(p.t, |b| b.min(p.t)));
            }
        }
        let Some(&mut (ref mut s, e)) = runs.get_mut(w) else {
            break;
        };
        let block = points.get(*s..e).unwrap_or(&[]);
        let take = match bound {
            Some(b) => block.partition_point(|p| p.t < b).max(1),
            None => block.len(),
        };
        out.extend_from_slice(block.get(..take).unwrap_or(&[]));
        *s += take;
    }
    out
}

/// A stable sort by time keeping the last point of each timestamp.
fn sort_keep_last(mut points: Vec<FPoint>) -> Vec<FPoint> {
    points.sort_by_key(|p| p.t);
    let mut out: Vec<FPoint> = Vec::with_capacity(points.len());
    for p in points {
        match out.last_mut() {
            Some(l) if l.t == p.t => *l = p,
            _ => out.push(p),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(i64, f64)]) -> Vec<FPoint> {
        v.iter().map(|&(t, f)| FPoint { t, f }).collect()
    }

    /// What the merge replaces: a stable sort keeping the last of equal timestamps.
    fn reference(v: Vec<FPoint>) -> Vec<FPoint> {
        sort_keep_last(v)
    }

    fn same(a: &[FPoint], b: &[FPoint]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.t == y.t && x.f.to_bits() == y.f.to_bits())
    }

    #[test]
    fn ordered_runs_are_kept_as_they_are() {
        let v = pts(&[(1, 1.0), (2, 2.0), (5, 3.0), (9, 4.0)]);
        assert!(same(&merge_runs(v.clone()), &v));
        assert!(merge_runs(Vec::new()).is_empty());
    }

    #[test]
    fn overlapping_files_interleave_and_the_later_file_wins() {
        // File A: 0, 30, 60, 90; file B (written later, overlapping): 15, 30, 45, 90;
        // a memtable batch: 60 again and 105.
        let mut v = pts(&[(0, 1.0), (30, 2.0), (60, 3.0), (90, 4.0)]);
        v.extend(pts(&[(15, 10.0), (30, 20.0), (45, 30.0), (90, 40.0)]));
        v.extend(pts(&[(60, 100.0), (105, 200.0)]));
        let want = pts(&[
            (0, 1.0),
            (15, 10.0),
            (30, 20.0),
            (45, 30.0),
            (60, 100.0),
            (90, 40.0),
            (105, 200.0),
        ]);
        assert!(same(&merge_runs(v.clone()), &want));
        assert!(same(&reference(v), &want));
    }

    #[test]
    fn one_run_per_sample_is_sorted_not_merged() {
        // Written one sample per request, newest first, then rewritten once: 20,001 runs.
        let mut v: Vec<FPoint> = (0..10_000).rev().map(|t| FPoint { t, f: 1.0 }).collect();
        v.extend((0..10_000).rev().map(|t| FPoint { t, f: 2.0 }));
        v.push(FPoint { t: 5, f: 3.0 });
        let got = merge_runs(v);
        assert_eq!(got.len(), 10_000);
        assert!(got.iter().enumerate().all(|(i, p)| p.t == i as i64));
        assert!(got.iter().all(|p| p.f == if p.t == 5 { 3.0 } else { 2.0 }));
    }

    #[test]
    fn duplicates_inside_one_run_keep_the_last() {
        let v = pts(&[(1, 1.0), (2, 2.0), (2, 3.0), (2, 4.0), (3, 5.0)]);
        assert!(same(&merge_runs(v), &pts(&[(1, 1.0), (2, 4.0), (3, 5.0)])));
    }

    #[test]
    fn matches_a_stable_sort_on_many_run_layouts() {
        // Deterministic pseudo-random runs: 1 to 9 runs of 0 to 40 points over a small
        // time range, so that equal timestamps across runs are common.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for case in 0..500 {
            let mut v = Vec::new();
            for run in 0..(1 + rand(9)) {
                let mut t = i64::try_from(rand(20)).unwrap_or(0);
                for _ in 0..rand(40) {
                    v.push(FPoint {
                        t,
                        f: (case * 1000 + run * 100) as f64 + t as f64,
                    });
                    t += 1 + i64::try_from(rand(3)).unwrap_or(0);
                }
            }
            let got = merge_runs(v.clone());
            assert!(same(&got, &reference(v)), "case {case}");
            assert!(got.windows(2).all(|w| w[0].t < w[1].t));
        }
    }
}
