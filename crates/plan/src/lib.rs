//! The plan language: loading, the published schema, diagnostics, templates, the validated
//! model and the static safety rules.

pub mod ccaconf;
pub mod diagnostic;
pub mod ep11conf;
pub mod init;
pub mod input;
pub mod load;
pub mod lower;
pub mod model;
pub mod raw;
pub mod rules;
pub mod schema;
pub mod source;
pub mod spans;
pub mod suggest;
pub mod template;
mod template_values;
mod values;
pub mod yaml;

pub use load::{Loaded, load, load_file};
pub use model::Plan;
