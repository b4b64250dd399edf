//! The three engines the workloads compare, each opened and written the way a careful user
//! would.

pub mod redb;
pub mod sqlite;
pub mod statelog;
