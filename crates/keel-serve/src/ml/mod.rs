//! Native `ai.onnx.ml` operators, registered over tract's ONNX importer.

mod linear;
mod preprocess;
mod tree;

use tract_onnx::Onnx;

/// tract's ONNX importer with Keel's operators added, and its tree ensemble
/// replaced.
pub fn onnx() -> Onnx {
    let mut onnx = tract_onnx::onnx();
    tree::register(&mut onnx.op_register);
    linear::register(&mut onnx.op_register);
    preprocess::register(&mut onnx.op_register);
    onnx
}
