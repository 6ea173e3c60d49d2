//! The model: charts, environments, the chart graph, the service matrix,
//! names and their rules, configuration, Helm's values merge. Imports only
//! `util`.

pub mod archive;
pub mod config;
pub mod context;
pub mod contract;
pub mod graph;
pub mod lock;
pub mod matrix;
pub mod model;
pub mod names;
pub mod outcome;
pub mod selection;
pub mod values;
pub mod versions;
