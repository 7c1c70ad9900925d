//! Model-quality metrics, one module per task: [`classification`],
//! [`regression`] and [`ranking`].

pub mod classification;
pub mod ranking;
pub mod regression;

pub(crate) mod labels;
pub(crate) mod order;
