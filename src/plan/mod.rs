//! The plan language: loading, the published schema, diagnostics, templates, the validated
//! model and the static safety rules.

pub mod diagnostic;
pub mod init;
pub mod load;
pub mod lower;
pub mod model;
pub mod raw;
mod raw_steps;
pub mod rules;
pub mod schema;
pub mod source;
pub(crate) mod suggest;
pub mod template;
mod template_values;
mod values;
pub mod yaml;

pub use load::{Loaded, load, load_file};
pub use model::Plan;
