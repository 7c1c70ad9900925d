//! The as-of kernel of one feature view: hash-partition both sides by join
//! key, sort each partition by time, merge.
//!
//! 1. **Entity side, once per view.** Each entity row's join key is encoded
//!    (a single integer column as its value, anything else with `arrow-row`:
//!    one byte string per row, equal exactly when every key column is equal);
//!    distinct keys get dense group numbers through a hash map, and the
//!    entity rows of each group are sorted by event time.
//! 2. **Feature side, streamed.** Each incoming batch is encoded the same
//!    way; a row whose key is null, whose key no entity row has, whose event
//!    time is null, or whose time lies outside every window of its group is
//!    dropped on the spot. The survivors become 24-byte entries (group,
//!    position, time, created) in a *merge buffer*, which also holds the
//!    batch's feature columns (shared, not copied).
//! 3. **Merge.** When the buffer is full (and at the end), its entries are
//!    bucketed by group (a counting sort), each bucket is sorted by (time,
//!    created, position), and merged with the group's sorted entity rows,
//!    two pointers per group: for each entity row the last entry at or
//!    before its event time is the best candidate of the buffer; it counts
//!    if it is inside the ttl window and beats the best candidate of earlier
//!    merges (which came earlier in input order, so a full tie goes to the
//!    new one). The feature values of the rows that won are copied out of
//!    the buffer (`interleave`), then the buffer is dropped.
//! 4. **Finish.** One `interleave` per feature column gathers each entity
//!    row's winner (or a null) in the entity table's order.
//!
//! Memory is bounded by the entity table and the merge buffer, whatever the
//! number of feature rows: winners kept between merges are compacted when
//! they outnumber twice the entity rows plus the buffer size.

use std::collections::HashMap;

use ahash::RandomState;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, RecordBatch, new_null_array};
use arrow_buffer::NullBuffer;
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::{ArrowError, DataType};
use arrow_select::interleave::interleave;

use super::error::{PointInTimeError, Table};
use super::time::{Scale, TimeKind, ticks};

/// Row positions are 32-bit: the kernel refuses larger batches and entity
/// tables, and never lets a merge buffer grow past this.
pub(crate) const MAX_ROWS: usize = u32::MAX as usize - 1;

/// Marks "no winner yet" in [`Best::chunk`].
const NO_CHUNK: u32 = u32::MAX;
/// Marks "winner found in the current merge buffer" in [`Best::chunk`].
const PENDING: u32 = u32::MAX - 1;

/// Encodes join keys so that two rows' encodings are equal exactly when
/// every key column is equal.
pub(crate) enum KeyEncoder {
    /// No join keys: every row is in one group.
    Unit,
    /// One integer column (the common `user_id` case): the value itself,
    /// widened to 64 bits, without the row format's copy.
    Integer,
    /// Anything else: `arrow-row`'s byte strings.
    Rows(RowConverter),
}

/// One batch's keys, encoded.
pub(crate) enum Keys {
    Unit,
    Integer(Vec<u64>),
    Rows(Rows),
}

impl KeyEncoder {
    pub(crate) fn new(types: &[DataType]) -> Result<Self, ArrowError> {
        match types {
            [] => Ok(Self::Unit),
            [t] if integer_bits(t) => Ok(Self::Integer),
            _ => {
                let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
                Ok(Self::Rows(RowConverter::new(fields)?))
            }
        }
    }

    pub(crate) fn encode(&self, columns: &[ArrayRef]) -> Result<Keys, ArrowError> {
        match (self, columns) {
            (Self::Unit, _) => Ok(Keys::Unit),
            (Self::Integer, [column]) => integers(column.as_ref()).map(Keys::Integer),
            (Self::Rows(converter), _) => converter.convert_columns(columns).map(Keys::Rows),
            (Self::Integer, _) => Err(ArrowError::InvalidArgumentError(format!(
                "expected one integer join key column, got {}",
                columns.len()
            ))),
        }
    }
}

fn integer_bits(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// The column's values as 64-bit patterns: injective within one type, and
/// both sides of a join have the same type.
fn integers(array: &dyn Array) -> Result<Vec<u64>, ArrowError> {
    fn widen<T: ArrowPrimitiveType>(array: &dyn Array, f: impl Fn(T::Native) -> u64) -> Vec<u64> {
        array
            .as_primitive::<T>()
            .values()
            .iter()
            .map(|v| f(*v))
            .collect()
    }
    Ok(match array.data_type() {
        DataType::Int8 => widen::<Int8Type>(array, |v| v as i64 as u64),
        DataType::Int16 => widen::<Int16Type>(array, |v| v as i64 as u64),
        DataType::Int32 => widen::<Int32Type>(array, |v| v as i64 as u64),
        DataType::Int64 => widen::<Int64Type>(array, |v| v as u64),
        DataType::UInt8 => widen::<UInt8Type>(array, u64::from),
        DataType::UInt16 => widen::<UInt16Type>(array, u64::from),
        DataType::UInt32 => widen::<UInt32Type>(array, u64::from),
        DataType::UInt64 => widen::<UInt64Type>(array, |v| v),
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "expected an integer join key, got {other}"
            )));
        }
    })
}

/// Join key → dense group number.
enum GroupMap<'a> {
    Unit(bool),
    Integer(HashMap<u64, u32, RandomState>),
    Rows(HashMap<&'a [u8], u32, RandomState>),
}

impl<'a> GroupMap<'a> {
    fn new(keys: &Keys) -> Self {
        match keys {
            Keys::Unit => Self::Unit(false),
            Keys::Integer(_) => Self::Integer(HashMap::with_hasher(RandomState::new())),
            Keys::Rows(_) => Self::Rows(HashMap::with_hasher(RandomState::new())),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Unit(any) => usize::from(*any),
            Self::Integer(map) => map.len(),
            Self::Rows(map) => map.len(),
        }
    }

    /// The group of row `i` of `keys`, numbering a new key.
    fn insert(&mut self, keys: &'a Keys, i: usize) -> u32 {
        let next = self.len() as u32;
        match (self, keys) {
            (Self::Integer(map), Keys::Integer(values)) => *map.entry(values[i]).or_insert(next),
            (Self::Rows(map), Keys::Rows(rows)) => *map.entry(rows.row(i).data()).or_insert(next),
            (Self::Unit(any), _) => {
                *any = true;
                0
            }
            // Keys come from the encoder that made this map.
            _ => 0,
        }
    }

    /// The group of row `i` of `keys`, if an entity row has that key.
    #[inline]
    fn get(&self, keys: &Keys, i: usize) -> Option<u32> {
        match (self, keys) {
            (Self::Integer(map), Keys::Integer(values)) => map.get(&values[i]).copied(),
            (Self::Rows(map), Keys::Rows(rows)) => map.get(rows.row(i).data()).copied(),
            (Self::Unit(true), _) => Some(0),
            _ => None,
        }
    }
}

/// Rows whose join key columns are all non-null and whose time is non-null.
pub(crate) fn valid_rows(keys: &[ArrayRef], time: &dyn Array) -> Option<NullBuffer> {
    let mut nulls = time.logical_nulls();
    for key in keys {
        nulls = NullBuffer::union(nulls.as_ref(), key.logical_nulls().as_ref());
    }
    nulls
}

pub(crate) fn is_valid(nulls: &Option<NullBuffer>, i: usize) -> bool {
    nulls.as_ref().is_none_or(|n| n.is_valid(i))
}

/// The entity rows of one view, grouped by join key and sorted by time.
pub(crate) struct EntityIndex<'a> {
    groups: GroupMap<'a>,
    /// `members[offsets[g]..offsets[g + 1]]` are group `g`'s rows.
    offsets: Vec<u32>,
    /// (event time, entity row), by group then time.
    members: Vec<(i64, u32)>,
    /// Latest event time of each group: later feature rows cannot match.
    max_time: Vec<i64>,
    /// Earliest event time of each group: with a ttl, rows older than this
    /// minus the ttl cannot match.
    min_time: Vec<i64>,
}

impl<'a> EntityIndex<'a> {
    pub(crate) fn build(
        keys: &'a Keys,
        key_columns: &[ArrayRef],
        time_column: &dyn Array,
        times: &[i64],
    ) -> Self {
        let valid = valid_rows(key_columns, time_column);
        let mut groups = GroupMap::new(keys);
        let mut tagged: Vec<(u32, i64, u32)> = Vec::with_capacity(times.len());
        for (row, &time) in times.iter().enumerate() {
            if !is_valid(&valid, row) {
                continue;
            }
            let group = groups.insert(keys, row);
            tagged.push((group, time, row as u32));
        }
        tagged.sort_unstable();
        let n_groups = groups.len();
        let mut offsets = vec![0_u32; n_groups + 1];
        let mut max_time = vec![i64::MIN; n_groups];
        let mut min_time = vec![i64::MAX; n_groups];
        for &(group, time, _) in &tagged {
            let g = group as usize;
            offsets[g + 1] += 1;
            max_time[g] = max_time[g].max(time);
            min_time[g] = min_time[g].min(time);
        }
        for g in 0..n_groups {
            offsets[g + 1] += offsets[g];
        }
        let members = tagged.into_iter().map(|(_, t, row)| (t, row)).collect();
        Self {
            groups,
            offsets,
            members,
            max_time,
            min_time,
        }
    }

    /// Group `group`'s (event time, entity row) pairs, by time then row.
    pub(crate) fn members(&self, group: u32) -> &[(i64, u32)] {
        let g = group as usize;
        &self.members[self.offsets[g] as usize..self.offsets[g + 1] as usize]
    }

    /// How many distinct join keys the entity rows have.
    pub(crate) fn group_count(&self) -> usize {
        self.max_time.len()
    }

    /// The group of row `i` of `keys` (encoded by the encoder of the
    /// entity's keys), if an entity row has that key.
    pub(crate) fn group(&self, keys: &Keys, i: usize) -> Option<u32> {
        self.groups.get(keys, i)
    }
}

/// A feature row that may match, as buffered: 24 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    group: u32,
    /// Position in the merge buffer; buffer order is input order.
    pos: u32,
    time: i64,
    created: i64,
}

/// An entry within its group's bucket, ordered as the contract ranks rows:
/// by time, then created time, then input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    time: i64,
    created: i64,
    pos: u32,
}

/// The best candidate so far of one entity row.
#[derive(Debug, Clone, Copy)]
struct Best {
    time: i64,
    created: i64,
    /// Input order across merges: merge number in the high half, buffer
    /// position in the low half.
    seq: u64,
    /// Index into [`ViewJoin::chunks`], or [`NO_CHUNK`] / [`PENDING`].
    chunk: u32,
    /// Row in that chunk (buffer position while [`PENDING`]).
    row: u32,
}

const NO_BEST: Best = Best {
    time: 0,
    created: 0,
    seq: 0,
    chunk: NO_CHUNK,
    row: 0,
};

/// Feature values of rows that won in some merge.
struct Chunk {
    columns: Vec<ArrayRef>,
    len: usize,
}

/// Where a view's columns are in a batch, and how its times are scaled.
pub(crate) struct ViewLayout {
    pub(crate) table: Table,
    pub(crate) key_names: Vec<String>,
    pub(crate) time_name: String,
    pub(crate) time_kind: TimeKind,
    pub(crate) created: Option<(String, TimeKind)>,
    pub(crate) feature_names: Vec<String>,
    /// Declared type of every column above, checked on each batch.
    pub(crate) declared: Vec<(String, DataType)>,
    pub(crate) scale: Scale,
    /// `None`: no lower bound.
    pub(crate) ttl_ticks: Option<i64>,
    pub(crate) merge_rows: usize,
}

/// The state of one view's join while its batches stream in.
pub(crate) struct ViewJoin<'a> {
    layout: ViewLayout,
    index: EntityIndex<'a>,
    encoder: &'a KeyEncoder,
    feature_types: Vec<DataType>,
    entity_rows: usize,
    /// The best candidate of each entity row that can match, in the order
    /// of [`EntityIndex::members`] (so a merge reads it sequentially).
    best: Vec<Best>,
    chunks: Vec<Chunk>,
    retained: usize,
    // The merge buffer.
    held: Vec<Vec<ArrayRef>>,
    held_starts: Vec<u32>,
    held_rows: usize,
    entries: Vec<Entry>,
    merges: u64,
    batches_seen: usize,
}

impl<'a> ViewJoin<'a> {
    pub(crate) fn new(
        layout: ViewLayout,
        index: EntityIndex<'a>,
        encoder: &'a KeyEncoder,
        feature_types: Vec<DataType>,
        entity_rows: usize,
    ) -> Self {
        Self {
            best: vec![NO_BEST; index.members.len()],
            index,
            layout,
            encoder,
            feature_types,
            entity_rows,
            chunks: Vec::new(),
            retained: 0,
            held: Vec::new(),
            held_starts: Vec::new(),
            held_rows: 0,
            entries: Vec::new(),
            merges: 0,
            batches_seen: 0,
        }
    }

    fn arrow(&self, source: ArrowError) -> PointInTimeError {
        PointInTimeError::Arrow {
            table: self.layout.table.clone(),
            source,
        }
    }

    fn column(&self, batch: &RecordBatch, name: &str) -> Result<ArrayRef, PointInTimeError> {
        let schema = batch.schema_ref();
        let (index, field) =
            schema
                .column_with_name(name)
                .ok_or_else(|| PointInTimeError::MissingColumn {
                    table: self.layout.table.clone(),
                    column: name.to_owned(),
                })?;
        let expected = self
            .layout
            .declared
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t);
        if let Some(expected) = expected
            && expected != field.data_type()
        {
            let view = match &self.layout.table {
                Table::View(v) => v.clone(),
                Table::Entity => String::new(),
            };
            return Err(PointInTimeError::BatchSchema {
                view,
                batch: self.batches_seen,
                column: name.to_owned(),
                expected: expected.clone(),
                found: field.data_type().clone(),
            });
        }
        Ok(batch.column(index).clone())
    }

    /// Takes one batch of the view: keeps the rows that may match, and merges
    /// when the buffer is full.
    pub(crate) fn push(&mut self, batch: &RecordBatch) -> Result<(), PointInTimeError> {
        let rows = batch.num_rows();
        if rows > MAX_ROWS {
            return Err(PointInTimeError::TooManyRows {
                table: self.layout.table.clone(),
                rows,
                max: MAX_ROWS,
            });
        }
        let key_columns = self
            .layout
            .key_names
            .iter()
            .map(|n| self.column(batch, n))
            .collect::<Result<Vec<_>, _>>()?;
        let time_column = self.column(batch, &self.layout.time_name)?;
        let created_column = match &self.layout.created {
            Some((name, _)) => Some(self.column(batch, name)?),
            None => None,
        };
        let features = self
            .layout
            .feature_names
            .iter()
            .map(|n| self.column(batch, n))
            .collect::<Result<Vec<_>, _>>()?;
        self.batches_seen += 1;
        if rows == 0 || self.index.groups.len() == 0 {
            return Ok(());
        }

        if self.held_rows + rows > self.layout.merge_rows.min(MAX_ROWS) && self.held_rows > 0 {
            self.merge()?;
        }

        let keys = self
            .encoder
            .encode(&key_columns)
            .map_err(|e| self.arrow(e))?;
        let valid = valid_rows(&key_columns, time_column.as_ref());
        let times = ticks(
            time_column.as_ref(),
            self.layout.time_kind,
            self.layout.scale,
            &self.layout.table,
            &self.layout.time_name,
        )?;
        let created = match (&created_column, &self.layout.created) {
            (Some(column), Some((name, kind))) => {
                let values = ticks(
                    column.as_ref(),
                    *kind,
                    Scale::native(*kind),
                    &self.layout.table,
                    name,
                )?;
                // A row without a created time loses every tie to a row with one.
                let nulls = column.logical_nulls();
                Some(
                    values
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| if is_valid(&nulls, i) { v } else { i64::MIN })
                        .collect::<Vec<_>>(),
                )
            }
            _ => None,
        };

        let start = self.held_rows as u32;
        let before = self.entries.len();
        for (i, &time) in times.iter().enumerate() {
            if !is_valid(&valid, i) {
                continue;
            }
            let Some(group) = self.index.groups.get(&keys, i) else {
                continue;
            };
            let g = group as usize;
            if time > self.index.max_time[g] {
                continue;
            }
            if let Some(ttl) = self.layout.ttl_ticks
                && time < self.index.min_time[g].saturating_sub(ttl)
            {
                continue;
            }
            self.entries.push(Entry {
                group,
                time,
                created: created.as_ref().map_or(0, |c| c[i]),
                pos: start + i as u32,
            });
        }
        if self.entries.len() > before {
            self.held.push(features);
            self.held_starts.push(start);
            self.held_rows += rows;
        }
        Ok(())
    }

    /// Merges the buffer into the best-so-far table and empties it.
    fn merge(&mut self) -> Result<(), PointInTimeError> {
        let entries = std::mem::take(&mut self.entries);
        // Bucket the entries by group (a counting sort, stable), then sort
        // each group's few entries by time: far cheaper than one sort of
        // the whole buffer.
        let groups = self.index.max_time.len();
        let mut starts = vec![0_u32; groups + 1];
        for entry in &entries {
            starts[entry.group as usize + 1] += 1;
        }
        for g in 0..groups {
            starts[g + 1] += starts[g];
        }
        let mut cursor = starts.clone();
        let mut bucketed = vec![
            Candidate {
                time: 0,
                created: 0,
                pos: 0
            };
            entries.len()
        ];
        for entry in &entries {
            let slot = &mut cursor[entry.group as usize];
            bucketed[*slot as usize] = Candidate {
                time: entry.time,
                created: entry.created,
                pos: entry.pos,
            };
            *slot += 1;
        }
        drop(entries);

        let seq_base = self.merges << 32;
        self.merges += 1;
        let ttl = self.layout.ttl_ticks;
        let mut updated: Vec<u32> = Vec::new();
        for g in 0..groups {
            let run = &mut bucketed[starts[g] as usize..starts[g + 1] as usize];
            if run.is_empty() {
                continue;
            }
            run.sort_unstable();
            let run = &*run;
            let mut p = 0;
            let first = self.index.offsets[g] as usize;
            for (k, &(event_time, _)) in self.index.members(g as u32).iter().enumerate() {
                while p < run.len() && run[p].time <= event_time {
                    p += 1;
                }
                let Some(candidate) = p.checked_sub(1).map(|k| run[k]) else {
                    continue;
                };
                if let Some(ttl) = ttl
                    && candidate.time < event_time.saturating_sub(ttl)
                {
                    continue;
                }
                let seq = seq_base | u64::from(candidate.pos);
                let member = first + k;
                let best = &mut self.best[member];
                let better = best.chunk == NO_CHUNK
                    || (candidate.time, candidate.created, seq)
                        > (best.time, best.created, best.seq);
                if better {
                    *best = Best {
                        time: candidate.time,
                        created: candidate.created,
                        seq,
                        chunk: PENDING,
                        row: candidate.pos,
                    };
                    updated.push(member as u32);
                }
            }
        }
        drop(bucketed);

        // Number the buffer rows that won, in the order first met.
        let mut slot = vec![u32::MAX; self.held_rows];
        let mut winners: Vec<u32> = Vec::new();
        for &member in &updated {
            let pos = self.best[member as usize].row as usize;
            if slot[pos] == u32::MAX {
                slot[pos] = winners.len() as u32;
                winners.push(pos as u32);
            }
        }
        let indices: Vec<(usize, usize)> = winners
            .iter()
            .map(|&pos| {
                let batch = self.held_starts.partition_point(|&s| s <= pos) - 1;
                (batch, (pos - self.held_starts[batch]) as usize)
            })
            .collect();
        let mut columns = Vec::with_capacity(self.feature_types.len());
        for k in 0..self.feature_types.len() {
            let arrays: Vec<&dyn Array> = self.held.iter().map(|b| b[k].as_ref()).collect();
            columns.push(interleave(&arrays, &indices).map_err(|e| self.arrow(e))?);
        }
        let chunk = self.chunks.len() as u32;
        for &member in &updated {
            let best = &mut self.best[member as usize];
            best.chunk = chunk;
            best.row = slot[best.row as usize];
        }
        self.chunks.push(Chunk {
            columns,
            len: winners.len(),
        });
        self.retained += winners.len();
        self.held.clear();
        self.held_starts.clear();
        self.held_rows = 0;

        if self.retained > 2 * self.best.len() + self.layout.merge_rows
            || self.chunks.len() >= (PENDING - 1) as usize
        {
            self.compact()?;
        }
        Ok(())
    }

    /// Keeps only the winners some entity row still points at, in one chunk.
    fn compact(&mut self) -> Result<(), PointInTimeError> {
        let mut slots: Vec<Vec<u32>> = self.chunks.iter().map(|c| vec![u32::MAX; c.len]).collect();
        let mut indices: Vec<(usize, usize)> = Vec::new();
        for best in self.best.iter_mut().filter(|b| b.chunk != NO_CHUNK) {
            let (chunk, row) = (best.chunk as usize, best.row as usize);
            let slot = &mut slots[chunk][row];
            if *slot == u32::MAX {
                *slot = indices.len() as u32;
                indices.push((chunk, row));
            }
            best.chunk = 0;
            best.row = *slot;
        }
        drop(slots);
        let mut columns = Vec::with_capacity(self.feature_types.len());
        for k in 0..self.feature_types.len() {
            let arrays: Vec<&dyn Array> =
                self.chunks.iter().map(|c| c.columns[k].as_ref()).collect();
            columns.push(interleave(&arrays, &indices).map_err(|e| self.arrow(e))?);
        }
        self.chunks = vec![Chunk {
            columns,
            len: indices.len(),
        }];
        self.retained = indices.len();
        Ok(())
    }

    /// Merges what is left and gathers every entity row's feature values, in
    /// entity order; rows without a match get nulls.
    pub(crate) fn finish(mut self) -> Result<Vec<ArrayRef>, PointInTimeError> {
        if !self.entries.is_empty() {
            self.merge()?;
        }
        let null_chunk = self.chunks.len();
        let mut indices = vec![(null_chunk, 0_usize); self.entity_rows];
        for (best, &(_, row)) in self.best.iter().zip(&self.index.members) {
            if best.chunk != NO_CHUNK {
                indices[row as usize] = (best.chunk as usize, best.row as usize);
            }
        }
        let mut out = Vec::with_capacity(self.feature_types.len());
        for (k, data_type) in self.feature_types.iter().enumerate() {
            let nulls = new_null_array(data_type, 1);
            let mut arrays: Vec<&dyn Array> =
                self.chunks.iter().map(|c| c.columns[k].as_ref()).collect();
            arrays.push(nulls.as_ref());
            out.push(interleave(&arrays, &indices).map_err(|e| self.arrow(e))?);
        }
        debug_assert!(
            self.chunks
                .iter()
                .all(|c| c.columns.iter().all(|a| a.len() == c.len))
        );
        Ok(out)
    }
}
