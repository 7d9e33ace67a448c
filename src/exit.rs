//! The exit-code contract. It is defined once, in `wove_proto::exit`, because
//! the submitter turns the same codes into retry rules; this module re-exports
//! it so a program embedding the worker finds it beside everything else.

pub use wove_proto::exit::{describe, Exit, EXIT_CODES_HELP, FIXED, STOP_SIGNALS};
