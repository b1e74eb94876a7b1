//! Row-group and page pruning of Parquet files sorted by a `u64` id column (series or
//! stream id) and then time, shared by the PromQL and LogQL storage readers.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{ArrowPrimitiveType, UInt64Type};
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::parquet::file::metadata::ParquetMetaData;

/// Whether any of the sorted `ids` lies in `[lo, hi]`.
fn any_in(ids: &[u64], lo: u64, hi: u64) -> bool {
    let i = ids.partition_point(|id| *id < lo);
    ids.get(i).is_some_and(|id| *id <= hi)
}

/// The row groups whose id and time statistics allow a wanted id (sorted `ids`) at a time
/// in `[start, end]`. `T` is the time column's Arrow type; a row group without
/// statistics is kept.
pub(crate) fn keep_row_groups<T: ArrowPrimitiveType<Native = i64>>(
    meta: &ParquetMetaData,
    id_stats: &StatisticsConverter<'_>,
    ts_stats: &StatisticsConverter<'_>,
    ids: &[u64],
    start: i64,
    end: i64,
) -> datafusion::parquet::errors::Result<Vec<usize>> {
    let rgs = meta.row_groups();
    let id_min = id_stats.row_group_mins(rgs.iter())?;
    let id_max = id_stats.row_group_maxes(rgs.iter())?;
    let ts_min = ts_stats.row_group_mins(rgs.iter())?;
    let ts_max = ts_stats.row_group_maxes(rgs.iter())?;
    let (id_min, id_max) = (
        id_min.as_primitive_opt::<UInt64Type>(),
        id_max.as_primitive_opt::<UInt64Type>(),
    );
    let (ts_min, ts_max) = (
        ts_min.as_primitive_opt::<T>(),
        ts_max.as_primitive_opt::<T>(),
    );
    let mut keep = Vec::new();
    for i in 0..rgs.len() {
        let ids_ok = match (id_min, id_max) {
            (Some(lo), Some(hi)) if lo.is_valid(i) && hi.is_valid(i) => {
                any_in(ids, lo.value(i), hi.value(i))
            }
            _ => true,
        };
        let time_ok = match (ts_min, ts_max) {
            (Some(lo), Some(hi)) if lo.is_valid(i) && hi.is_valid(i) => {
                lo.value(i) <= end && hi.value(i) >= start
            }
            _ => true,
        };
        if ids_ok && time_ok {
            keep.push(i);
        }
    }
    Ok(keep)
}

/// Skips the id-column pages of the kept row groups that cannot hold a wanted id; `None`
/// when the file has no page index.
pub(crate) fn page_selection(
    meta: &ParquetMetaData,
    id_stats: &StatisticsConverter<'_>,
    keep: &[usize],
    ids: &[u64],
) -> Option<RowSelection> {
    let (ci, oi) = (meta.column_index()?, meta.offset_index()?);
    let mins = id_stats.data_page_mins(ci, oi, keep).ok()?;
    let maxes = id_stats.data_page_maxes(ci, oi, keep).ok()?;
    let counts = id_stats
        .data_page_row_counts(oi, meta.row_groups(), keep)
        .ok()??;
    let (mins, maxes) = (
        mins.as_primitive_opt::<UInt64Type>()?,
        maxes.as_primitive_opt::<UInt64Type>()?,
    );
    if mins.len() != counts.len() || maxes.len() != counts.len() {
        return None;
    }
    let mut selectors: Vec<RowSelector> = Vec::with_capacity(counts.len());
    for p in 0..counts.len() {
        let rows = usize::try_from(counts.value(p)).ok()?;
        let wanted =
            !(mins.is_valid(p) && maxes.is_valid(p)) || any_in(ids, mins.value(p), maxes.value(p));
        selectors.push(if wanted {
            RowSelector::select(rows)
        } else {
            RowSelector::skip(rows)
        });
    }
    Some(RowSelection::from(selectors))
}

#[cfg(test)]
mod tests {
    use super::any_in;

    #[test]
    fn any_in_checks_the_closed_range() {
        let ids = [3, 7, 10];
        assert!(any_in(&ids, 7, 7));
        assert!(any_in(&ids, 4, 8));
        assert!(!any_in(&ids, 4, 6));
        assert!(!any_in(&ids, 11, 20));
        assert!(any_in(&ids, 0, 3));
    }
}
