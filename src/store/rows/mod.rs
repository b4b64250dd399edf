//! A table's rows in memory, bottom up: the bytes they are made of (`bytes`) and the row types
//! (`row`); the sorted base laid out on restore and at compaction, with its hash directory
//! (`base`, `directory`); the rows appended after it in key order, as sorted chunks (`tail`)
//! and the newest few in write-once slots (`recent`); the persistent delta of the other
//! changes, a small tree over merged sorted runs (`delta`), with its key filter (`filter`);
//! and the set of them all (`set`), read in key order by one merge (`merge`), or from both
//! ends (`range`).

mod base;
mod bytes;
mod delta;
mod directory;
mod filter;
mod merge;
mod range;
mod recent;
mod reclaim;
mod row;
mod set;
mod tail;

pub(crate) use base::{Base, BaseBuilder, prefix_of};
pub(crate) use bytes::{Bytes, put_varint, read_varint};
pub(crate) use delta::MarkedRun;
pub(crate) use reclaim::reclaim_any;
pub(crate) use row::{Row, RowRef};
pub(crate) use set::{BaseId, Rows};
