//! What a reading stage hands the driver: the audit rows of what it read,
//! what it saw of the source and the links it met (for a follow-up
//! packet), and its verdict. Stages read and decide; the driver alone
//! records, so a dry run is the same stages with recording turned off.

use super::halt::Halt;
use super::record::Row;
use crate::policy::condition::View;

/// What a stage read, and whether the run may go on.
#[derive(Debug, Default)]
pub struct Reading {
    pub rows: Vec<Row>,
    /// The source's decision as read (revalidate).
    pub snapshot: Option<View>,
    /// Links met on the way (evidence), for a follow-up packet.
    pub links: Vec<String>,
    /// Why the run stops here, if it does.
    pub halt: Option<Halt>,
}
