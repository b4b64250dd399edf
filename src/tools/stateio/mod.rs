//! Reading grailbio `logio`/`stateio` files (the Go design this store's frame and epoch layers
//! follow) and importing them into a store directory (feature `stateio`). The byte layout is
//! in README, "Importing grailbio stateio files": `logio.rs` reads records and entries,
//! `reader.rs` stateio entries and epochs, `import.rs` writes them through the epoch layer.

mod import;
mod logio;
mod reader;

pub use import::{IMPORT_TABLE, ImportReport, ImportedEpoch, import_stateio};
pub use logio::{LOGIO_BLOCK, LOGIO_HEADER, LogioEntry, LogioReader, MAX_LOGIO_ENTRY};
pub use reader::{StateioEntry, StateioEpoch, StateioFile, StateioReader, read_stateio};
