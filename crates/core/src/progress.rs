/// Receives progress of a long transfer. Implementations must be cheap: `advance` is called for
/// every chunk. `Send + Sync`, so operations reporting to it can run as tasks.
pub trait Progress: Send + Sync {
    /// The transfer starts; `expected` is the size it will about have, when known.
    fn start(&self, expected: Option<u64>);
    /// `bytes` more were done.
    fn advance(&self, bytes: u64);
    /// The transfer ended, well or not.
    fn finish(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _expected: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}
