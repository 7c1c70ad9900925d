//! Signature enforcement: a request's tensors are checked against the model's
//! inputs before anything runs. Wrong names, datatypes, shapes, batch sizes,
//! invalid UTF-8 and (unless the model routes missing values) NaN or infinity
//! are refused with the reason; nothing is cast.

use crate::ServeError;
use crate::plan::Signature;
use crate::tensor::{Data, NamedTensor};

/// The inputs in the signature's order, and the batch size (rows) they share.
pub fn check_inputs(
    signature: &Signature,
    mut given: Vec<NamedTensor>,
) -> Result<(Vec<NamedTensor>, usize), ServeError> {
    let bad = |m: String| Err(ServeError::BadInput(m));
    for (i, t) in given.iter().enumerate() {
        if given[..i].iter().any(|o| o.name == t.name) {
            return bad(format!("input {} is given twice", t.name));
        }
        if !signature.inputs.iter().any(|s| s.name == t.name) {
            let names: Vec<&str> = signature.inputs.iter().map(|s| s.name.as_str()).collect();
            return bad(format!(
                "unknown input {}; the model takes {}",
                t.name,
                names.join(", ")
            ));
        }
    }
    let mut ordered = Vec::with_capacity(signature.inputs.len());
    let mut rows: Option<(usize, String)> = None;
    for spec in &signature.inputs {
        let Some(pos) = given.iter().position(|t| t.name == spec.name) else {
            return bad(format!("input {} is missing", spec.name));
        };
        let t = given.swap_remove(pos);
        if t.data.datatype() != spec.datatype {
            return bad(format!(
                "input {} has datatype {}; the model takes {}",
                spec.name,
                t.data.datatype(),
                spec.datatype
            ));
        }
        let expected: usize = t.shape.iter().product();
        if expected != t.data.len() {
            return bad(format!(
                "input {} has shape {:?} ({expected} elements) but {} elements of data",
                spec.name,
                t.shape,
                t.data.len()
            ));
        }
        let shape_ok = t.shape.len() == spec.shape.len()
            && t.shape
                .iter()
                .zip(&spec.shape)
                .all(|(g, s)| *s < 0 || *g as i64 == *s);
        if !shape_ok {
            return bad(format!(
                "input {} has shape {:?}; the model takes {:?} (-1: any size)",
                spec.name, t.shape, spec.shape
            ));
        }
        if let Some(n) = t.shape.first() {
            match &rows {
                Some((r, first)) if signature.batched && r != n => {
                    return bad(format!(
                        "input {} has {n} rows but input {first} has {r}; inputs share the batch dimension",
                        spec.name
                    ));
                }
                None => rows = Some((*n, spec.name.clone())),
                _ => {}
            }
        }
        if !signature.allow_non_finite
            && let Some(i) = t.data.first_non_finite()
        {
            return bad(format!(
                "input {} element {i} is NaN or infinite; this model does not accept missing values",
                spec.name
            ));
        }
        if let Data::Bytes(values) = &t.data
            && let Some(i) = values.iter().position(|v| std::str::from_utf8(v).is_err())
        {
            return bad(format!(
                "input {} element {i} is not valid UTF-8; the model takes strings",
                spec.name
            ));
        }
        ordered.push(t);
    }
    Ok((ordered, rows.map(|r| r.0).unwrap_or(1)))
}
