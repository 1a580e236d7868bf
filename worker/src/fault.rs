//! Deliberate misbehaviour for the demo and the tests: a worker that lies.
//!
//! Compiled only with the `fault-injection` cargo feature, and reachable
//! only through [`NodeConfig::fault`](crate::NodeConfig) in Rust code: no
//! flag, config key or message can turn it on in `peergrid node`.

/// How a faulty worker corrupts its results. It still signs them, as a
/// real cheater would: the lie is attributable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Returns these bytes as the output of every successful run.
    WrongOutput(Vec<u8>),
    /// Flips the last byte of every output (a subtle cheat).
    FlipLastByte,
    /// Signs its claims with a throwaway key instead of its identity.
    ForgeSignature,
    /// Changes the output after signing the claim (bytes and hash disagree).
    TamperAfterSigning,
}

impl Fault {
    /// Applies the fault to a run's stdout before it is signed.
    pub fn corrupt(&self, stdout: &mut Vec<u8>) {
        match self {
            Fault::ForgeSignature | Fault::TamperAfterSigning => {}
            Fault::WrongOutput(bytes) => *stdout = bytes.clone(),
            Fault::FlipLastByte => match stdout.last_mut() {
                Some(b) => *b ^= 0x01,
                None => stdout.push(b'!'),
            },
        }
    }
}
