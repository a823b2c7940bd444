//! The ports: what the engine and the steps need of the host, as traits and the types they
//! exchange. The host adapters implement them for a real Linux on Z; a rehearsal plugs the
//! simulator's pieces in beside them. Nothing here touches the system.

pub mod host;
pub mod keys;
pub mod operator;
pub mod pins;
pub mod root;
pub mod tke;
pub mod units;

use std::sync::Arc;

use crate::ports::host::HostActions;
use crate::ports::keys::{KeyProber, TokenKeys};
use crate::ports::pins::PinReader;
use crate::ports::tke::CheckpointActor;

/// The host a run acts on, and who stands in where the real one cannot.
#[derive(Clone)]
pub struct Ports {
    pub host: Arc<dyn HostActions>,
    pub keys: Arc<dyn KeyProber>,
    pub pins: Arc<dyn PinReader>,
    /// Report signing with a key on a token.
    pub signing: Arc<dyn TokenKeys>,
    /// Who acts at a checkpoint instead of people (a rehearsal's simulated TKE operator).
    pub tke: Option<Arc<dyn CheckpointActor>>,
}
