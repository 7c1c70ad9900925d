//! Integration tests of the lifecycle engine: real engines on temporary
//! directories, restarted and crashed in between.

mod engine;
mod graph;
mod model;

use keel_lifecycle::{Engine, EngineOptions};

/// An engine on `dir` without fsync (the tests crash it by closing, not by
/// pulling the power) and with timers and actions on.
pub fn open(dir: &std::path::Path) -> Engine {
    let mut o = EngineOptions::new(dir);
    o.fsync = false;
    Engine::open(o).expect("open engine")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
