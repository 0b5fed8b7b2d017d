//! The hand-off pipeline, one module per stage. Built so far: [`intake`].
//! Still to come: revalidate, validate, plan, execute, confirm.

pub mod intake;
